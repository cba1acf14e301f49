"""Configuration: the execution config, the canonical configs, factories and the legacy bridge.

Every field is declared once with its metadata (:func:`config_field`); validation, CLI parsers,
the spec tables and the notebook widgets derive from it.
"""

from .canonical import InferenceConfig, ModelConfig, TrainingConfig
from .execution import (FRONT_END_DEFAULTS, PyTorchExecutionConfig, callbacks,
                        configure_optimizers, dataloader_kwargs, resolve_accelerator,
                        trainer_kwargs)
from .factories import (AuditEntry, InferencePayload, TrainingPayload, create_inference_payload,
                        create_training_payload)
from .fields import (CANONICAL_CATEGORIES, CATEGORIES, EXECUTION_CATEGORIES, ConfigError,
                     config_field, describe_rule, fields_by_category)
from .legacy import update_legacy_dict
from .serialize import read_config_file, save_configs

__all__ = [
    "PyTorchExecutionConfig", "ModelConfig", "TrainingConfig", "InferenceConfig",
    "ConfigError", "config_field", "fields_by_category", "describe_rule",
    "CATEGORIES", "EXECUTION_CATEGORIES", "CANONICAL_CATEGORIES", "FRONT_END_DEFAULTS",
    "trainer_kwargs", "dataloader_kwargs", "callbacks", "configure_optimizers",
    "resolve_accelerator",
    "create_training_payload", "create_inference_payload", "TrainingPayload", "InferencePayload",
    "AuditEntry", "update_legacy_dict", "save_configs", "read_config_file",
]
