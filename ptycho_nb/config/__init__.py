"""Configuration vocabulary: the execution config, the canonical configs, one precedence resolver
and the legacy bridge.

Every field is declared once with its metadata (:func:`config_field`); validation, CLI parsers,
the spec tables and the notebook widgets derive from it. Nothing here imports torch, Lightning or
any other part of ptycho_nb above the ground floor.
"""

from .canonical import InferenceConfig, ModelConfig, TrainingConfig
from .compat import check_compatible
from .execution import FRONT_END_DEFAULTS, RECONSTRUCT_DEFAULTS, PyTorchExecutionConfig, resolve_monitor
from .fields import (CANONICAL_CATEGORIES, CATEGORIES, EXECUTION_CATEGORIES, ConfigError,
                     config_field, describe_rule, fields_by_category)
from .legacy import update_legacy_dict
from .precedence import AuditEntry, Layer, resolve
from .files import read_config_file
from .serialize import save_configs

__all__ = [
    "PyTorchExecutionConfig", "ModelConfig", "TrainingConfig", "InferenceConfig",
    "ConfigError", "config_field", "fields_by_category", "describe_rule",
    "CATEGORIES", "EXECUTION_CATEGORIES", "CANONICAL_CATEGORIES", "FRONT_END_DEFAULTS",
    "RECONSTRUCT_DEFAULTS",    "check_compatible", "resolve_monitor", "AuditEntry", "Layer", "resolve",
    "update_legacy_dict", "save_configs", "read_config_file",
]
