"""Every action the audit log records: one enum, checked when an entry is written.

Older stores may hold two legacy spellings (``activate`` from the command line and
``discard_model`` from the training wizard); :func:`canonical` reads them as
:attr:`AuditAction.ACTIVATE_MODEL` and :attr:`AuditAction.DELETE_MODEL`.
"""

from __future__ import annotations

from enum import StrEnum


class AuditAction(StrEnum):
    # images, labels, ROIs, review
    IMPORT = "import"
    RELOCATE = "relocate"
    SET_LABEL = "set_label"
    CLEAR_LABEL = "clear_label"
    REVIEW = "review"
    ADD_ROI = "add_roi"
    UPDATE_ROI = "update_roi"
    DELETE_ROI = "delete_roi"
    ACCEPT_SUGGESTED_ROI = "accept_suggested_roi"
    REJECT_SUGGESTED_ROI = "reject_suggested_roi"
    OVERRIDE_IMAGE_FLAG = "update"  # the reader classifies an image the input guard flagged
    READER_CALL = "reader_call"
    REVEAL_AI = "reveal_ai"
    # models
    MODEL_VERSION = "model_version"
    ACTIVATE_MODEL = "activate_model"
    PROMOTE_MODEL = "promote_model"
    ROLLBACK_MODEL = "rollback_model"
    USE_DEFAULT_MODEL = "use_default_model"
    IMPORT_MODEL = "import_model"
    EXPORT_MODEL = "export_model"
    DELETE_MODEL = "delete_model"
    PUBLISH_MODEL = "publish_model"
    FIT_FEATURE_GUARD = "fit_feature_guard"
    # locked test set
    CREATE_LOCKED_TEST = "create_locked_test"
    RESET_LOCKED_TEST = "reset_locked_test"
    REPLACE_LOCKED_TEST = "replace_locked_test"
    PUBLISH_LOCKED_TEST = "publish_locked_test"
    RETIRE_LOCKED_TEST = "retire_locked_test"
    # the store itself and settings
    MIGRATE = "migrate"
    RESTORE = "restore"
    SETTING = "setting"


#: Model actions that make a version active (the roll-back history reads these).
ACTIVATIONS = frozenset({AuditAction.ACTIVATE_MODEL, AuditAction.PROMOTE_MODEL, AuditAction.USE_DEFAULT_MODEL})

_LEGACY = {"activate": AuditAction.ACTIVATE_MODEL, "discard_model": AuditAction.DELETE_MODEL}


def canonical(action: str) -> AuditAction | None:
    """The enum member of a stored action (legacy spellings included), or None if unknown."""
    if action in _LEGACY:
        return _LEGACY[action]
    try:
        return AuditAction(action)
    except ValueError:
        return None


def checked(action: str | AuditAction) -> str:
    """``action`` as stored; ValueError if it is not one of :class:`AuditAction`."""
    try:
        return AuditAction(action).value
    except ValueError:
        raise ValueError(
            f"unknown audit action {action!r}: add it to busviewer.core.store.actions.AuditAction"
        ) from None
