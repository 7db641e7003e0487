"""Errors that stop a run with one clear line (the entry points print them without a traceback)."""

USAGE_ERROR = (
    2  # the exit code of a run stopped by one: the shell's convention for a command used wrongly (argparse's too)
)


class HybridError(Exception):
    """Base of every user-facing error: the message names the key, file or row at fault."""


class ConfigError(HybridError, ValueError):
    """An invalid configuration value or combination."""


class DataError(HybridError, ValueError):
    """A problem with the dataset files."""


class CheckpointError(HybridError):
    """A checkpoint that is missing, foreign, or does not fit the configured model."""


class PretrainedWeightsError(ConfigError):
    """Pretrained weights were asked for but cannot be found offline."""


class JobInterrupted(HybridError):
    """SIGTERM / SIGINT stopped a job whose finished work is kept for a rerun to continue.

    ``exit_code`` follows the shell convention for death by signal (130 SIGINT, 143 SIGTERM).
    """

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


class TrainingInterrupted(JobInterrupted):
    """SIGTERM / SIGINT stopped training after a step; ``checkpoint`` (``last.pt``) was written for
    resuming."""

    def __init__(self, message: str, exit_code: int, checkpoint=None):
        super().__init__(message, exit_code)
        self.checkpoint = checkpoint
