"""What every side-by-side benchmark records: the machine, the load, and each side's runs
summarised as median and spread."""

import os
import platform
import statistics


def machine(threads):
    """CPU model, logical CPUs, the threads both sides use, and the load average now."""
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": model,
        "logical_cpus": os.cpu_count(),
        "threads": threads,
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
    }


def spread(values, digits=4):
    """Median, min and max of a list of runs, and the runs themselves."""
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
        "runs": [round(v, digits) for v in values],
    }


def describe(name, summary, unit):
    """One line: median and spread of a side."""
    return (f"{name}: median {summary['median']} {unit} "
            f"(min {summary['min']}, max {summary['max']}, {len(summary['runs'])} rounds)")
