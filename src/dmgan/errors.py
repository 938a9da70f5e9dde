"""Errors for user mistakes. The CLI prints their message and exits non-zero, no traceback."""


class DMGANError(Exception):
    """A problem with the user's input (a file, a config, a caption), not a bug."""


class ConfigError(DMGANError):
    """A config value that no network or loop can run with."""


class CheckpointError(DMGANError):
    """A weight file that is missing, unreadable, or does not fit the chosen configuration."""


class PresetMismatchError(CheckpointError):
    """A readable checkpoint of another preset than the one asked for."""


class ResumeMismatchError(DMGANError):
    """--resume asked to continue a run with settings other than the ones it was started with."""
