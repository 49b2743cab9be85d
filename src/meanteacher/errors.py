"""The error a user can act on: bad files, arguments or checkpoints, reported in one line."""


class MeanTeacherError(ValueError):
    """A problem with the user's input; the command line prints its message without a traceback."""


class DataError(MeanTeacherError):
    """A dataset, label file or archive that cannot be used as it is."""


class DataWarning(UserWarning):
    """Data that was usable only after a change (e.g. images resized to one size); the command line prints it in one line."""
