"""JSON schemas for the KEDA objects we use (keda.sh/v1alpha1), written from KEDA's documented spec.

Sources: the ScaledObject specification and the Redis Lists scaler page of the KEDA docs (2.15 and
later; the fields used here are unchanged since 2.10). Strict on purpose: an unknown or misspelt
field fails, as the Kubernetes schemas do in strict mode.
"""
from __future__ import annotations

from typing import Any

_LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
_METADATA = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {"name": {"type": "string", "minLength": 1}, "namespace": {"type": "string"},
                   "labels": _LABELS, "annotations": _LABELS},
}
_UINT = {"type": "integer", "minimum": 0}
_DIGITS = {"type": "string", "pattern": "^[0-9]+$"}
_BOOL_STRING = {"type": "string", "enum": ["true", "false"]}

_HPA_RULES = {  # autoscaling/v2 HPAScalingRules, which KEDA passes to the HPA it creates
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "stabilizationWindowSeconds": {"type": "integer", "minimum": 0, "maximum": 3600},
        "selectPolicy": {"enum": ["Max", "Min", "Disabled"]},
        "policies": {"type": "array", "items": {
            "type": "object",
            "required": ["type", "value", "periodSeconds"],
            "additionalProperties": False,
            "properties": {"type": {"enum": ["Pods", "Percent"]},
                           "value": {"type": "integer", "minimum": 1},
                           "periodSeconds": {"type": "integer", "minimum": 1, "maximum": 1800}},
        }},
    },
}

# Redis Lists scaler (`type: redis`) metadata; credentials never go here, only through *FromEnv or
# a TriggerAuthentication.
REDIS_TRIGGER_METADATA = {
    "type": "object",
    "required": ["listName", "listLength"],
    "additionalProperties": False,
    "properties": {
        "address": {"type": "string", "pattern": "^[^:/]+:[0-9]+$"},
        "host": {"type": "string"},
        "port": _DIGITS,
        "addressFromEnv": {"type": "string"},
        "hostFromEnv": {"type": "string"},
        "portFromEnv": {"type": "string"},
        "usernameFromEnv": {"type": "string"},
        "passwordFromEnv": {"type": "string"},
        "listName": {"type": "string", "minLength": 1},
        "listLength": _DIGITS,
        "activationListLength": _DIGITS,
        "enableTLS": _BOOL_STRING,
        "unsafeSsl": _BOOL_STRING,
        "databaseIndex": _DIGITS,
    },
}
# What a TriggerAuthentication may supply to the redis scaler.
REDIS_AUTH_PARAMETERS = {"address", "host", "port", "username", "password", "tls", "ca", "cert", "key", "keyPassword"}

SCALED_OBJECT: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "additionalProperties": False,
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                                   "name": {"type": "string", "minLength": 1},
                                   "envSourceContainerName": {"type": "string"}},
                },
                "pollingInterval": {"type": "integer", "minimum": 1},
                "cooldownPeriod": _UINT,
                "initialCooldownPeriod": _UINT,
                "idleReplicaCount": _UINT,
                "minReplicaCount": _UINT,
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "fallback": {
                    "type": "object",
                    "required": ["failureThreshold", "replicas"],
                    "additionalProperties": False,
                    "properties": {"failureThreshold": {"type": "integer", "minimum": 1}, "replicas": _UINT,
                                   "behavior": {"enum": ["static", "currentReplicas", "currentReplicasIfHigher",
                                                         "currentReplicasIfLower"]}},
                },
                "advanced": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "restoreToOriginalReplicaCount": {"type": "boolean"},
                        "horizontalPodAutoscalerConfig": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "name": {"type": "string"},
                                "behavior": {"type": "object", "additionalProperties": False,
                                             "properties": {"scaleUp": _HPA_RULES, "scaleDown": _HPA_RULES}},
                            },
                        },
                        "scalingModifiers": {
                            "type": "object",
                            "required": ["formula", "target"],
                            "additionalProperties": False,
                            "properties": {"formula": {"type": "string"}, "target": {"type": "string"},
                                           "activationTarget": {"type": "string"},
                                           "metricType": {"enum": ["AverageValue", "Value"]}},
                        },
                    },
                },
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata"],
                        "additionalProperties": False,
                        "properties": {
                            "type": {"type": "string"},
                            "name": {"type": "string"},
                            "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
                            "useCachedMetrics": {"type": "boolean"},
                            "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                            "authenticationRef": {
                                "type": "object",
                                "required": ["name"],
                                "additionalProperties": False,
                                "properties": {"name": {"type": "string"},
                                               "kind": {"enum": ["TriggerAuthentication",
                                                                 "ClusterTriggerAuthentication"]}},
                            },
                        },
                        "if": {"properties": {"type": {"const": "redis"}}},
                        "then": {"properties": {"metadata": REDIS_TRIGGER_METADATA}},
                    },
                },
            },
        },
    },
}

_REF = {"type": "object", "required": ["parameter", "name", "key"], "additionalProperties": False,
        "properties": {"parameter": {"type": "string"}, "name": {"type": "string"}, "key": {"type": "string"}}}

TRIGGER_AUTHENTICATION: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "TriggerAuthentication"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": False,
            "properties": {
                "secretTargetRef": {"type": "array", "items": _REF},
                "configMapTargetRef": {"type": "array", "items": _REF},
                "env": {"type": "array", "items": {
                    "type": "object", "required": ["parameter", "name"], "additionalProperties": False,
                    "properties": {"parameter": {"type": "string"}, "name": {"type": "string"},
                                   "containerName": {"type": "string"}}}},
                # Provider-specific blocks we do not use; accepted as objects.
                "podIdentity": {"type": "object"},
                "hashiCorpVault": {"type": "object"},
                "azureKeyVault": {"type": "object"},
                "awsSecretManager": {"type": "object"},
                "gcpSecretManager": {"type": "object"},
                "boundServiceAccountToken": {"type": "array"},
            },
        },
    },
}

SCHEMAS = {"ScaledObject": SCALED_OBJECT, "TriggerAuthentication": TRIGGER_AUTHENTICATION}
