"""What the measuring scripts share: this process's resident memory."""


def rss_mb() -> float:
    """This process's resident set size (Linux /proc/self/status VmRSS), in MiB; 0 elsewhere."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0
