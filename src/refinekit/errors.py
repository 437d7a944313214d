"""The exceptions refinekit raises for problems a user can act on.

The CLI turns each into a one-line message: `UsageError` (bad flags, bad input folders)
exits with code 2, every other `RefinekitError` with code 1.
"""


class RefinekitError(Exception):
    """A failure the user can understand from its message alone."""

    exit_code = 1


class UsageError(RefinekitError):
    """The command was asked for something it cannot do (bad flag, path or data)."""

    exit_code = 2


class DataError(UsageError):
    """An input folder or image is missing, empty or unreadable."""


class ConfigError(UsageError):
    """A setting is invalid, or incompatible with an existing run.

    `setting`: the one setting (a TrainConfig field name) the message is about, when it is
    about one; its message then starts `--flag-name: `, so the CLI can name a config file's
    key instead when the value came from there."""

    def __init__(self, message: str, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting


class CheckpointError(RefinekitError):
    """A checkpoint is missing, corrupt or from another configuration."""


class ImageReadError(RefinekitError):
    """One image file could not be decoded."""


class OutputError(RefinekitError):
    """An output file could not be encoded or written."""


class NonFiniteError(RefinekitError):
    """Training produced a NaN or infinite loss."""
