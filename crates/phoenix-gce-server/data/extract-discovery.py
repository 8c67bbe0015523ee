#!/usr/bin/env python3
"""Extracts the part of Google's Compute Engine v1 discovery document that the
test server serves and validates against, into compute-v1-subset.json.

The full document ships in the `google-api-python-client` package on PyPI
(googleapiclient/discovery_cache/documents/compute.v1.json, ~5 MB). Usage:

    pip download --no-deps google-api-python-client==2.202.0 -d /tmp/gapi
    unzip -o /tmp/gapi/google_api_python_client-*.whl \
        'googleapiclient/discovery_cache/documents/compute.v1.json' -d /tmp/gapi
    python3 extract-discovery.py /tmp/gapi/googleapiclient/discovery_cache/documents/compute.v1.json

The subset keeps, verbatim: the document's revision, its global (system)
parameters, the methods listed below, and every schema reachable from their
request and response bodies. Nothing is edited by hand.
"""
import json
import os
import sys

METHODS = {
    "networks": ["insert", "get", "list", "delete", "patch"],
    "subnetworks": ["insert", "get", "list", "aggregatedList", "delete", "patch"],
    "firewalls": ["insert", "get", "list", "delete", "patch"],
    "addresses": ["insert", "get", "list", "aggregatedList", "delete", "setLabels"],
    "disks": ["insert", "get", "list", "aggregatedList", "delete", "setLabels", "createSnapshot", "resize"],
    "instances": [
        "insert", "get", "list", "aggregatedList", "delete", "setLabels", "setMachineType", "start", "stop",
        "attachDisk", "detachDisk", "setMetadata", "setServiceAccount",
    ],
    "snapshots": ["insert", "get", "list", "delete", "setLabels"],
    "images": ["insert", "get", "getFromFamily", "list", "delete", "patch", "setLabels"],
    "globalOperations": ["get"],
    "regionOperations": ["get"],
    "zoneOperations": ["get"],
}


def refs(node, out):
    if isinstance(node, dict):
        if "$ref" in node:
            out.add(node["$ref"])
        for v in node.values():
            refs(v, out)
    elif isinstance(node, list):
        for v in node:
            refs(v, out)


def main(path):
    doc = json.load(open(path))
    resources = {}
    wanted = set()
    for res, names in METHODS.items():
        methods = doc["resources"][res]["methods"]
        resources[res] = {"methods": {n: methods[n] for n in names}}
        for n in names:
            refs(methods[n], wanted)
    schemas = {}
    todo = list(wanted)
    while todo:
        name = todo.pop()
        if name in schemas:
            continue
        schemas[name] = doc["schemas"][name]
        found = set()
        refs(schemas[name], found)
        todo.extend(found - schemas.keys())
    subset = {
        "_generated_by": "crates/phoenix-gce-server/data/extract-discovery.py from google-api-python-client's compute.v1.json",
        "revision": doc["revision"],
        "version": doc["version"],
        "rootUrl": doc["rootUrl"],
        "servicePath": doc["servicePath"],
        "parameters": doc["parameters"],
        "resources": resources,
        "schemas": dict(sorted(schemas.items())),
    }
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "compute-v1-subset.json")
    with open(out, "w") as f:
        json.dump(subset, f, indent=1, sort_keys=False)
        f.write("\n")
    print(f"revision {doc['revision']}: {sum(len(r['methods']) for r in resources.values())} methods, {len(schemas)} schemas -> {out}")


if __name__ == "__main__":
    main(sys.argv[1])
