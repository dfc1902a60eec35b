"""Errors a user can cause. Each message says what happened and what to do next; the CLI prints it in one line."""


class QAError(Exception):
    """Base of every error qa raises on purpose."""


class SettingsError(QAError):
    """A setting or flag has a value qa cannot use."""


class QuestionError(QAError):
    """The question is empty, too long, or otherwise unanswerable as asked."""


class CorpusError(QAError):
    """The seeds folder is missing or holds nothing that can be indexed."""


class IndexMissingError(QAError):
    """No index has been built yet."""


class IndexCorruptError(QAError):
    """The index on disk is damaged or half-written."""


class IndexMismatchError(QAError):
    """The index was built with another model or other chunk settings."""


class IndexBusyError(QAError):
    """Another process is building the index right now."""
