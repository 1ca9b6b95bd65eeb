// geocdn latency beacon: <script async src="http://EDGE/latency/beacon.js"></script>
// Times a tiny fetch from the edge that served this script and, for a sampled share of
// page views, from up to two other edges, then posts the times to the serving edge.
(function () {
  var base = new URL(document.currentScript.src).origin;
  function once(url) {
    var t0 = performance.now();
    return fetch(url + "/latency/object?r=" + Math.random(), {cache: "no-store", mode: "cors"})
      .then(function (r) { return r.arrayBuffer(); })
      .then(function () { return performance.now() - t0; });
  }
  // a first fetch opens the connection; the least of the next two is the figure
  function time(url) {
    return once(url).then(function () { return once(url); })
      .then(function (a) { return once(url).then(function (b) { return Math.min(a, b); }); });
  }
  fetch(base + "/latency/targets", {cache: "no-store"}).then(function (r) { return r.json(); })
    .then(function (t) {
      var names = Object.keys(t.peers);
      var picked = [];
      if (Math.random() < t.sample_rate) {
        names.sort(function () { return Math.random() - 0.5; });
        picked = names.slice(0, t.alternates);
      }
      // one edge after the other, in random order, so no edge is always timed first
      var todo = [[t.edge, base]].concat(picked.map(function (n) { return [n, t.peers[n]]; }));
      todo.sort(function () { return Math.random() - 0.5; });
      var samples = [];
      return todo.reduce(function (done, job) {
        return done.then(function () {
          return time(job[1]).then(function (ms) { samples.push({edge: job[0], ms: ms}); },
                                   function () {});
        });
      }, Promise.resolve()).then(function () { return samples; });
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
