#!/usr/bin/env python3
"""Validates topology files against Tapestry's JSON Schema with a real JSON Schema validator
(python3-jsonschema), as an editor's YAML language server would.

usage: schema_check.py SCHEMA FILE...
Prints one line per file, "FILE: valid" or "FILE: invalid: MESSAGE", and exits 0 (the caller
compares the verdicts with `tapestry check`'s); exits 2 when a file is not YAML at all.

The YAML is read with YAML 1.2 core scalars (as yaml-language-server and Tapestry read it):
only true/false are booleans, only decimal digits are integers, no timestamps or sexagesimal
numbers, unlike PyYAML's YAML 1.1 defaults.
"""
import json
import re
import sys

import jsonschema
import yaml


class CoreLoader(yaml.SafeLoader):
    pass


CoreLoader.yaml_implicit_resolvers = {}
for tag, pattern, first in [
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("tag:yaml.org,2002:int", r"^[-+]?[0-9]+$", list("-+0123456789")),
    ("tag:yaml.org,2002:float",
     r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
     list("-+.0123456789")),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
]:
    CoreLoader.add_implicit_resolver(tag, re.compile(pattern), first)


def construct_int(loader, node):
    return int(loader.construct_scalar(node), 10)


def construct_bool(loader, node):
    return loader.construct_scalar(node).lower() == "true"


CoreLoader.add_constructor("tag:yaml.org,2002:int", construct_int)
CoreLoader.add_constructor("tag:yaml.org,2002:bool", construct_bool)


def main():
    schema = json.load(open(sys.argv[1]))
    validator = jsonschema.Draft7Validator(schema)
    for path in sys.argv[2:]:
        with open(path) as handle:
            try:
                document = yaml.load(handle, Loader=CoreLoader)
            except yaml.YAMLError as error:
                print(f"{path}: not YAML: {str(error).splitlines()[0]}")
                continue
        # Mapping keys must be text in JSON (an editor converts them the same way).
        document = json.loads(json.dumps(document, default=str))
        errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
        if errors:
            first = errors[0]
            where = "/".join(str(p) for p in first.absolute_path) or "(top)"
            print(f"{path}: invalid: {where}: {first.message}")
        else:
            print(f"{path}: valid")


if __name__ == "__main__":
    main()
