"""What can go wrong opening the warehouse, as exceptions every reader and writer shares."""


class WarehouseBusy(TimeoutError):
    """The warehouse stayed locked by another process for longer than the timeout."""


class WarehouseMissing(FileNotFoundError):
    """A read-only connection was asked for a warehouse file that does not exist yet."""
