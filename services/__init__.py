"""Not a package: a folder of the workspace; the library is `cashmatch`."""

raise ImportError(
    f"{__name__}/ is a folder of the cashmatch workspace, not a package: import cashmatch"
)
