"""Authoritative GeoDNS server: YAML zones, geo-steered pools, health-aware answers."""
