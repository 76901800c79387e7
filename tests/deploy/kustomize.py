"""A small kustomize for CI without the binary: only the features deploy/k8s uses, and loud about any other.

Handled: resources (files and directories), namespace, configMapGenerator (literals; create and merge,
name hash as kustomize computes it, references rewritten), images, replicas, patches (strategic merge
with the list merge keys of the built-in kinds; JSON merge for custom resources). Checked against
`kubectl kustomize` (kustomize v5.8) while writing; the output is the same objects.
"""
from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Obj = dict[str, Any]

KNOWN_KEYS = {"apiVersion", "kind", "namespace", "resources", "configMapGenerator", "images", "replicas", "patches"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PriorityClass",
                  "StorageClass", "ClusterTriggerAuthentication"}
BUILTIN_GROUPS = {"v1", "apps/v1", "batch/v1", "policy/v1", "autoscaling/v2", "networking.k8s.io/v1"}
# patchMergeKey of the lists a strategic merge patch merges instead of replacing (k8s.io/api).
MERGE_KEYS = {"containers": "name", "initContainers": "name", "ephemeralContainers": "name", "volumes": "name",
              "volumeMounts": "mountPath", "env": "name", "ports": "containerPort", "imagePullSecrets": "name",
              "tolerations": "key", "hostAliases": "ip"}


class KustomizeError(Exception):
    """The kustomization uses something this renderer does not do, or refers to something missing."""


@dataclass
class _Build:
    objects: list[Obj] = field(default_factory=list)
    generated: dict[str, Obj] = field(default_factory=dict)  # original name -> generated ConfigMap


def build(directory: str | Path) -> list[Obj]:
    """Render the kustomization in `directory` as `kubectl kustomize` would."""
    result = _build(Path(directory))
    renames: dict[str, str] = {}
    for name, cm in result.generated.items():
        hashed = f"{name}-{config_map_hash(cm)}"
        renames[name] = hashed
        cm["metadata"]["name"] = hashed
    for obj in result.objects:
        _rename_config_map_refs(obj, renames)
    return result.objects


def _build(directory: Path) -> _Build:
    kfile = directory / "kustomization.yaml"
    if not kfile.is_file():
        raise KustomizeError(f"no kustomization.yaml in {directory}")
    k = yaml.safe_load(kfile.read_text()) or {}
    unknown = set(k) - KNOWN_KEYS
    if unknown:
        raise KustomizeError(f"{kfile}: unsupported fields {sorted(unknown)}")
    out = _Build()
    for entry in k.get("resources", []):
        path = directory / entry
        if path.is_dir():
            sub = _build(path)
            out.objects += sub.objects
            out.generated.update(sub.generated)
        elif path.is_file():
            out.objects += [d for d in yaml.safe_load_all(path.read_text()) if d]
        else:
            raise KustomizeError(f"{kfile}: resource {entry} not found")
    for gen in k.get("configMapGenerator", []):
        _generate(out, gen, kfile)
    for patch in k.get("patches", []):
        _patch(out.objects, directory, patch, kfile)
    for image in k.get("images", []):
        _set_image(out.objects, image)
    for rep in k.get("replicas", []):
        targets = [o for o in out.objects
                   if o["metadata"]["name"] == rep["name"] and o["kind"] in ("Deployment", "StatefulSet", "ReplicaSet")]
        if not targets:
            raise KustomizeError(f"{kfile}: replicas for unknown {rep['name']}")
        for o in targets:
            o["spec"]["replicas"] = rep["count"]
    if "namespace" in k:
        for o in out.objects:
            if o["kind"] not in CLUSTER_SCOPED:
                o["metadata"]["namespace"] = k["namespace"]
    return out


def _generate(out: _Build, gen: Obj, kfile: Path) -> None:
    if set(gen) - {"name", "literals", "behavior"}:
        raise KustomizeError(f"{kfile}: unsupported configMapGenerator fields {sorted(set(gen) - {'name'})}")
    data = dict(lit.split("=", 1) for lit in gen.get("literals", []))
    behavior = gen.get("behavior", "create")
    name = gen["name"]
    if behavior == "create":
        if name in out.generated:
            raise KustomizeError(f"{kfile}: ConfigMap {name} generated twice")
        cm: Obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}
        out.generated[name] = cm
        out.objects.append(cm)
    elif behavior == "merge":
        if name not in out.generated:
            raise KustomizeError(f"{kfile}: merge into ConfigMap {name}, which no base generates")
        out.generated[name]["data"].update(data)
    else:
        raise KustomizeError(f"{kfile}: configMapGenerator behavior {behavior} not supported")


def config_map_hash(cm: Obj) -> str:
    """kustomize's name suffix: sha256 of the Go-JSON encoding of kind and data, 10 characters re-spelled."""
    # kustomize hashes the generated object before it has a name, hence "name": "".
    encoded = json.dumps({"data": cm.get("data", {}), "kind": "ConfigMap", "name": ""},
                         sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    encoded = encoded.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    digest = hashlib.sha256(encoded.encode()).hexdigest()[:10]
    return digest.translate(str.maketrans("013ae", "ghkmt"))


def _rename_config_map_refs(obj: Obj, renames: dict[str, str]) -> None:
    pod = _pod_spec(obj)
    if pod is None:
        return
    for c in pod.get("containers", []) + pod.get("initContainers", []):
        for src in c.get("envFrom", []):
            ref = src.get("configMapRef")
            if ref and ref["name"] in renames:
                ref["name"] = renames[ref["name"]]
        for var in c.get("env", []):
            ref = var.get("valueFrom", {}).get("configMapKeyRef")
            if ref and ref["name"] in renames:
                ref["name"] = renames[ref["name"]]
    for vol in pod.get("volumes", []):
        ref = vol.get("configMap")
        if ref and ref["name"] in renames:
            ref["name"] = renames[ref["name"]]


def _pod_spec(obj: Obj) -> Obj | None:
    if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"):
        return obj["spec"]["template"]["spec"]
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    if obj["kind"] == "Pod":
        return obj["spec"]
    return None


def _set_image(objects: list[Obj], image: Obj) -> None:
    for obj in objects:
        pod = _pod_spec(obj)
        for c in (pod or {}).get("containers", []) + (pod or {}).get("initContainers", []):
            name, tag = _split_image(c["image"])
            if name != image["name"]:
                continue
            new_name = image.get("newName", name)
            if "digest" in image:
                c["image"] = f"{new_name}@{image['digest']}"
            else:
                new_tag = image.get("newTag", tag)
                c["image"] = f"{new_name}:{new_tag}" if new_tag else new_name


def _split_image(ref: str) -> tuple[str, str]:
    """("registry:5000/app", "1.2") from "registry:5000/app:1.2"; a digest counts as no tag."""
    ref = ref.split("@", 1)[0]
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    return (ref[:colon], ref[colon + 1:]) if colon > slash else (ref, "")


def _patch(objects: list[Obj], directory: Path, patch: Obj, kfile: Path) -> None:
    if set(patch) != {"path"}:
        raise KustomizeError(f"{kfile}: only `patches: - path: FILE` (strategic merge) is supported")
    for doc in (d for d in yaml.safe_load_all((directory / patch["path"]).read_text()) if d):
        targets = [o for o in objects if o["kind"] == doc["kind"] and o["metadata"]["name"] == doc["metadata"]["name"]]
        if len(targets) != 1:
            raise KustomizeError(f"{kfile}: patch {doc['kind']}/{doc['metadata']['name']} matches {len(targets)}")
        target = targets[0]
        strategic = target["apiVersion"] in BUILTIN_GROUPS
        merged = _merge(target, doc, strategic)
        target.clear()
        target.update(merged)


def _merge(base: Any, patch: Any, strategic: bool, key: str = "") -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            if v is None:
                out.pop(k, None)
            elif k in out:
                out[k] = _merge(out[k], v, strategic, k)
            else:
                out[k] = copy.deepcopy(v)
        return out
    if strategic and isinstance(base, list) and isinstance(patch, list) and key in MERGE_KEYS:
        # kustomize (kyaml) lists the patch's elements first, then the untouched originals.
        mk = MERGE_KEYS[key]
        originals = {b.get(mk): b for b in base}
        merged = [_merge(originals[item.get(mk)], item, strategic) if item.get(mk) in originals
                  else copy.deepcopy(item) for item in patch]
        patched = {item.get(mk) for item in patch}
        return merged + [copy.deepcopy(b) for b in base if b.get(mk) not in patched]
    return copy.deepcopy(patch)
