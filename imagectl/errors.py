"""What goes wrong, each with its exit code (docs/images.md#exit-codes)."""

from __future__ import annotations


class ToolError(Exception):
    """An error the user can act on: its message is printed as is, the command exits with `exit_code`."""

    exit_code = 1
    code = "Error"


class UsageError(ToolError):
    exit_code, code = 2, "Usage"


class RepositoryMissing(ToolError):
    exit_code, code = 3, "RepositoryNotFound"


class TagTaken(ToolError):
    exit_code, code = 4, "ImmutableTagTaken"


class CredentialsError(ToolError):
    exit_code, code = 5, "Credentials"


class SourceError(ToolError):
    exit_code, code = 6, "Source"


class DigestMismatch(ToolError):
    exit_code, code = 7, "DigestMismatch"


class RegistryError(ToolError):
    exit_code, code = 8, "Registry"


class NotFound(ToolError):
    exit_code, code = 9, "NotFound"
