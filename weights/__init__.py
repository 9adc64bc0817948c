"""Model weights on local disk: turn a packaged model into a directory engines load.

Below every other package: the router (``router_model``) and the specialists both load
prepared directories, and neither should import the other to find one.

Public API: ``prepare_model``, ``ModelPrepareError``, ``model_location``,
``model_dir_for``, ``is_prepared``, ``source_checksum``, ``verify_model_dir``,
``file_sha256``.
"""

from weights.prepare import (
    ModelPrepareError,
    file_sha256,
    is_prepared,
    model_dir_for,
    model_location,
    prepare_model,
    source_checksum,
    verify_model_dir,
)

__all__ = [
    "ModelPrepareError",
    "file_sha256",
    "is_prepared",
    "model_dir_for",
    "model_location",
    "prepare_model",
    "source_checksum",
    "verify_model_dir",
]
