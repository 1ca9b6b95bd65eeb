// geocdn latency beacon: <script async src="http://EDGE/latency/beacon.js"></script>
// Times a tiny fetch from the edge that served this script and, for a sampled share of
// page views, from up to two other edges, then posts the times to the serving edge.
(function () {
  var base = new URL(document.currentScript.src).origin;
  function time(url) {
    var t0 = performance.now();
    return fetch(url + "/latency/object?r=" + Math.random(), {cache: "no-store", mode: "cors"})
      .then(function (r) { return r.arrayBuffer(); })
      .then(function () { return performance.now() - t0; });
  }
  fetch(base + "/latency/targets", {cache: "no-store"}).then(function (r) { return r.json(); })
    .then(function (t) {
      var names = Object.keys(t.peers);
      var picked = [];
      if (Math.random() < t.sample_rate) {
        names.sort(function () { return Math.random() - 0.5; });
        picked = names.slice(0, t.alternates);
      }
      // a first fetch opens the connection; the second one is timed
      return time(base).then(function () {
        var jobs = [time(base).then(function (ms) { return {edge: t.edge, ms: ms}; })];
        picked.forEach(function (name) {
          var url = t.peers[name];
          jobs.push(time(url).then(function () { return time(url); })
            .then(function (ms) { return {edge: name, ms: ms}; }, function () { return null; }));
        });
        return Promise.all(jobs);
      });
    })
    .then(function (samples) {
      samples = samples.filter(function (s) { return s && s.ms > 0; })
        .map(function (s) { return {edge: s.edge, ms: Math.round(s.ms * 100) / 100}; });
      window.geocdnBeacon = samples;
      return fetch(base + "/latency/beacon", {method: "POST", body: JSON.stringify({samples: samples}),
                                              headers: {"Content-Type": "application/json"}});
    })
    .then(function (r) { window.geocdnBeaconStatus = r.status; })
    .catch(function (e) { window.geocdnBeaconStatus = String(e); });
})();
