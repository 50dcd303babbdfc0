"""Every error of ours, as one small hierarchy so callers catch by meaning."""


class CheckinError(Exception):
    """Base of every qr-checkin error."""


class ConfigError(CheckinError, ValueError):
    """The configuration file or environment is invalid."""


class PayloadRejected(CheckinError, ValueError):
    """A scanned code failed a check; the message names the field and rule, never personal data."""


class StorageError(CheckinError):
    """The local store cannot take or give events."""


class StorageFull(StorageError):
    """The disk holding the store has no room for another event."""


class StorageReadOnly(StorageError):
    """The filesystem holding the store is read-only."""


class StorageCorrupt(StorageError):
    """The store's file is damaged: not a database, or a malformed page."""


class SourceError(CheckinError):
    """A scan source failed (device gone, cannot open, held by another process)."""


class SourceUnavailable(SourceError):
    """A configured scanner or camera is not present (unplugged, not yet attached)."""


class SourceBusy(SourceError):
    """Another process holds the scanner exclusively."""


class ImageUnreadable(SourceError):
    """An image file cannot be read as a frame (missing, not an image, no image library)."""


class FeedbackError(CheckinError):
    """The feedback hardware is misconfigured (pins, conflicts)."""


class ProvisionError(CheckinError, ValueError):
    """qr-provision refused its input (plate, broker URL, files, certificates); nothing was written."""
