"""Turn CustomResourceDefinitions into the JSON Schemas tests/unit/test_deploy_manifests.py
checks our custom resources against (what kubeconform's openapi2jsonschema does):

    python deploy/k8s/crd-schemas/extract.py CRD.yaml ... > written into this folder

Each served version of each CRD becomes `<kind>-<group>-<version>.json`, strict like the
API server's field validation: an object that lists its properties accepts no others
(unless it says `x-kubernetes-preserve-unknown-fields`). Descriptions are dropped.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).parent


def strict(schema: Any) -> Any:
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: strict(value) for key, value in schema.items() if key != "description"}
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    preserve = out.pop("x-kubernetes-preserve-unknown-fields", False)
    if "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return {key: value for key, value in out.items() if not key.startswith("x-kubernetes-")}


def main(paths: list[str]) -> None:
    for path in paths:
        for crd in yaml.safe_load_all(Path(path).read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            spec = crd["spec"]
            for version in spec["versions"]:
                if not version.get("served"):
                    continue
                schema = strict(version["schema"]["openAPIV3Schema"])
                # apiVersion, kind and metadata are the API server's, checked as such.
                schema.setdefault("properties", {}).update(
                    {"apiVersion": {"type": "string"}, "kind": {"type": "string"}}
                )
                group = spec["group"].split(".")[0]
                name = f"{spec['names']['kind'].lower()}-{group}-{version['name']}"
                (HERE / f"{name}.json").write_text(
                    json.dumps(schema, indent=1, sort_keys=True) + "\n"
                )
                print(name)


if __name__ == "__main__":
    main(sys.argv[1:])
