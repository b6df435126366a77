"""Old-kernel backends (DAMON debugfs, page_idle), tested inside the shared kernel's VM."""
