#!/usr/bin/env python3
"""Checks that a rendered overlay's pods only use ConfigMaps and Secrets that exist.

Usage: check_k8s_refs.py OVERLAY RENDERED.yaml [README.md]

Kubernetes accepts a Deployment whose Secret does not exist yet; its pods
then hang in CreateContainerConfigError or ContainerCreating. This check
finds such a mistake before a cluster does. For every pod template in the
rendered output (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job,
CronJob, Pod), each

  - env valueFrom configMapKeyRef / secretKeyRef (name and key),
  - envFrom configMapRef / secretRef (name),
  - volume configMap / secret, and projected sources (name, and each key
    listed in items),
  - imagePullSecrets (name),

and each Ingress TLS secretName, must be defined in the rendered output
(ConfigMap data/binaryData, Secret data/stringData), or be listed for this
overlay in the table of operator-created Secrets in k8s/README.md (between
the markers below) with the key. Optional references are checked too: a
missing optional Secret silently turns a feature off.

It also checks, as the adapter would at start, that every volumeMount names
a volume of its pod, and that for each mounted sources TOML (a ConfigMap key
ending in sources.toml) every `secret_env` variable is set in the container
that mounts it and every `secret_files` path lies under one of its mounts.

Exits 0 when all is well, 1 with one line per problem otherwise.
"""

from __future__ import annotations

import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import yaml

BEGIN = "<!-- BEGIN operator-secrets -->"
END = "<!-- END operator-secrets -->"

POD_TEMPLATE_PATHS = {
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    "Pod": ("spec",),
}


@dataclass
class Inventory:
    """What the rendered output defines, and what the operator documents."""

    config_maps: dict[str, dict[str, str]] = field(default_factory=dict)
    secrets: dict[str, set[str]] = field(default_factory=dict)
    documented: dict[str, set[str]] = field(default_factory=dict)
    used_documented: set[str] = field(default_factory=set)
    checked: int = 0


def parse_operator_table(readme: str, overlay: str) -> dict[str, set[str]]:
    """Secrets (name -> keys) that README.md says the operator creates for overlay."""
    start, end = readme.find(BEGIN), readme.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"check_k8s_refs: markers {BEGIN!r} ... {END!r} not found in the README")
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in readme[start + len(BEGIN) : end].splitlines()
        if line.strip().startswith("|")
    ]
    if len(rows) < 3:
        raise SystemExit("check_k8s_refs: the operator Secrets table has no rows")
    header = [h.lower() for h in rows[0]]
    try:
        col_name, col_keys, col_overlays = (header.index(h) for h in ("secret", "keys", "overlays"))
    except ValueError:
        raise SystemExit(
            f"check_k8s_refs: the operator Secrets table needs columns Secret, Keys, Overlays; has {rows[0]}"
        ) from None
    table: dict[str, set[str]] = {}
    for row in rows[2:]:  # rows[1] is the |---| separator
        names = re.findall(r"`([^`]+)`", row[col_name])
        if len(names) != 1:
            raise SystemExit(f"check_k8s_refs: operator Secrets row without one `name`: {row}")
        overlays = {o.strip() for o in row[col_overlays].split(",")}
        if overlay in overlays:
            table[names[0]] = set(re.findall(r"`([^`]+)`", row[col_keys]))
    return table


def dig(obj: dict, path: tuple[str, ...]) -> dict | None:
    for part in path:
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    return obj


class Checker:
    def __init__(self, overlay: str, inventory: Inventory) -> None:
        self.overlay = overlay
        self.inv = inventory
        self.problems: list[str] = []

    def problem(self, where: str, what: str) -> None:
        self.problems.append(f"{self.overlay}: {where}: {what}")

    def need_config_map(self, where: str, what: str, name: str, key: str | None) -> None:
        self.inv.checked += 1
        if name not in self.inv.config_maps:
            self.problem(where, f"{what}: ConfigMap {name!r} is not in the rendered output")
        elif key is not None and key not in self.inv.config_maps[name]:
            self.problem(where, f"{what}: ConfigMap {name!r} has no key {key!r}")

    def need_secret(self, where: str, what: str, name: str, key: str | None) -> None:
        self.inv.checked += 1
        if name in self.inv.secrets:
            if key is not None and key not in self.inv.secrets[name]:
                self.problem(where, f"{what}: Secret {name!r} has no key {key!r}")
        elif name in self.inv.documented:
            self.inv.used_documented.add(name)
            if key is not None and key not in self.inv.documented[name]:
                self.problem(
                    where,
                    f"{what}: Secret {name!r} is operator-created, but k8s/README.md "
                    f"does not list its key {key!r}",
                )
        else:
            self.problem(
                where,
                f"{what}: Secret {name!r} is neither in the rendered output nor listed for "
                f"overlay {self.overlay!r} in k8s/README.md's table of operator-created Secrets",
            )

    def check_pod(self, where: str, pod: dict, claim_templates: list[dict]) -> None:
        volumes = {v["name"]: v for v in pod.get("volumes") or []}
        # A StatefulSet's volumeClaimTemplates are volumes of its pods too.
        volumes.update({c["metadata"]["name"]: {"name": c["metadata"]["name"]} for c in claim_templates})
        for ref in pod.get("imagePullSecrets") or []:
            self.need_secret(where, "imagePullSecrets", ref["name"], None)
        for vol in volumes.values():
            self.check_volume(where, vol)
        containers = [
            *(pod.get("initContainers") or []),
            *(pod.get("containers") or []),
            *(pod.get("ephemeralContainers") or []),
        ]
        for container in containers:
            self.check_container(f"{where} container {container['name']}", container, volumes)

    def check_volume(self, where: str, vol: dict) -> None:
        what = f"volume {vol['name']}"
        sources = []
        if "configMap" in vol:
            sources.append(("configMap", vol["configMap"]))
        if "secret" in vol:
            sources.append(("secret", vol["secret"]))
        for proj in (vol.get("projected") or {}).get("sources") or []:
            for kind in ("configMap", "secret"):
                if kind in proj:
                    sources.append((kind, proj[kind]))
        for kind, src in sources:
            name = src.get("name") if kind == "configMap" else src.get("secretName", src.get("name"))
            items = src.get("items") or []
            need = self.need_config_map if kind == "configMap" else self.need_secret
            if not items:
                need(where, what, name, None)
            for item in items:
                need(where, what, name, item["key"])

    def check_container(self, where: str, container: dict, volumes: dict[str, dict]) -> None:
        env_names = set()
        for env in container.get("env") or []:
            env_names.add(env["name"])
            value_from = env.get("valueFrom") or {}
            what = f"env {env['name']}"
            if "configMapKeyRef" in value_from:
                ref = value_from["configMapKeyRef"]
                self.need_config_map(where, what, ref["name"], ref["key"])
            if "secretKeyRef" in value_from:
                ref = value_from["secretKeyRef"]
                self.need_secret(where, what, ref["name"], ref["key"])
        for env_from in container.get("envFrom") or []:
            prefix = env_from.get("prefix", "")
            if "configMapRef" in env_from:
                name = env_from["configMapRef"]["name"]
                self.need_config_map(where, "envFrom", name, None)
                env_names |= {prefix + k for k in self.inv.config_maps.get(name, {})}
            if "secretRef" in env_from:
                name = env_from["secretRef"]["name"]
                self.need_secret(where, "envFrom", name, None)
                keys = self.inv.secrets.get(name) or self.inv.documented.get(name) or set()
                env_names |= {prefix + k for k in keys}
        mounts = container.get("volumeMounts") or []
        for mount in mounts:
            if mount["name"] not in volumes:
                self.problem(where, f"volumeMount {mount['mountPath']}: no volume {mount['name']!r} in the pod")
        self.check_sources_toml(where, mounts, volumes, env_names)

    def check_sources_toml(
        self, where: str, mounts: list[dict], volumes: dict[str, dict], env_names: set[str]
    ) -> None:
        """The adapter's sources file: its secret_env and secret_files must be provided."""
        mount_paths = [PurePosixPath(m["mountPath"]) for m in mounts]
        for mount in mounts:
            cm = (volumes.get(mount["name"]) or {}).get("configMap")
            if not cm or cm.get("name") not in self.inv.config_maps:
                continue
            data = self.inv.config_maps[cm["name"]]
            for key, text in data.items():
                if not key.endswith("sources.toml"):
                    continue
                try:
                    doc = tomllib.loads(text)
                except tomllib.TOMLDecodeError as err:
                    self.problem(where, f"ConfigMap {cm['name']} key {key}: invalid TOML: {err}")
                    continue
                for source, spec in (doc.get("sources") or {}).items():
                    for var in spec.get("secret_env") or []:
                        self.inv.checked += 1
                        if var not in env_names:
                            self.problem(
                                where,
                                f"sources.toml source {source!r} reads secret_env {var!r}, "
                                "which this container does not set",
                            )
                    for path in spec.get("secret_files") or []:
                        self.inv.checked += 1
                        p = PurePosixPath(path)
                        if not any(p.is_relative_to(m) for m in mount_paths):
                            self.problem(
                                where,
                                f"sources.toml source {source!r} reads secret_files {path!r}, "
                                "which no volumeMount of this container provides",
                            )


def main(argv: list[str]) -> int:
    if len(argv) not in (3, 4):
        print(__doc__.splitlines()[2], file=sys.stderr)
        return 2
    overlay, rendered = argv[1], argv[2]
    readme_path = argv[3] if len(argv) == 4 else "k8s/README.md"
    with open(rendered, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    with open(readme_path, encoding="utf-8") as f:
        inv = Inventory(documented=parse_operator_table(f.read(), overlay))

    for doc in docs:
        name = doc["metadata"]["name"]
        if doc["kind"] == "ConfigMap":
            inv.config_maps[name] = {**(doc.get("data") or {}), **(doc.get("binaryData") or {})}
        elif doc["kind"] == "Secret":
            inv.secrets[name] = set(doc.get("data") or {}) | set(doc.get("stringData") or {})

    checker = Checker(overlay, inv)
    for doc in docs:
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] in POD_TEMPLATE_PATHS:
            pod = dig(doc, POD_TEMPLATE_PATHS[doc["kind"]])
            if pod is None:
                checker.problem(where, "no pod template")
            else:
                claims = (doc.get("spec") or {}).get("volumeClaimTemplates") or []
                checker.check_pod(where, pod, claims if doc["kind"] == "StatefulSet" else [])
        elif doc["kind"] == "Ingress":
            for tls in (doc.get("spec") or {}).get("tls") or []:
                if "secretName" in tls:
                    checker.need_secret(where, "tls", tls["secretName"], None)

    if checker.problems:
        print(f"check_k8s_refs: {len(checker.problems)} broken reference(s):", file=sys.stderr)
        for line in checker.problems:
            print(f"  {line}", file=sys.stderr)
        return 1
    operator = ", ".join(sorted(inv.used_documented)) or "none"
    print(f"check_k8s_refs: {overlay}: {inv.checked} references resolved (operator-created Secrets: {operator})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
