"""Which CPU a benchmark ran on, for the reports' header lines.

The project's runs have landed on different 2-core virtual machines that all call themselves "AMD EPYC"
in /proc/cpuinfo's model name (bench/NOTES.md, "The machine's OpenBLAS"): a Zen 5 and a Zen 4 run the same
AVX-512 code at very different rates, so a report names the CPU family and model as well, and the
microarchitecture where the pair is a known one (AMD's and Intel's published family/model numbers).
"""

# (vendor prefix, family, first model, last model) -> microarchitecture
_KNOWN = [
    ("AMD", 25, 0x00, 0x0F, "Zen 3"),
    ("AMD", 25, 0x10, 0x1F, "Zen 4"),
    ("AMD", 25, 0x20, 0x5F, "Zen 3"),
    ("AMD", 25, 0x60, 0xAF, "Zen 4"),
    ("AMD", 26, 0x00, 0xFF, "Zen 5"),
    ("Intel", 6, 0x8F, 0x8F, "Sapphire Rapids"),
    ("Intel", 6, 0xCF, 0xCF, "Emerald Rapids"),
    ("Intel", 6, 0xAD, 0xAD, "Granite Rapids"),
]


def _cpuinfo_fields(path="/proc/cpuinfo"):
    fields = {}
    try:
        with open(path) as f:
            for line in f:
                if not line.strip():
                    break  # the first processor's block is enough
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def cpu_description(path="/proc/cpuinfo"):
    """'AMD EPYC (family 25 model 17: Zen 4)', or as much of it as the file gives."""
    f = _cpuinfo_fields(path)
    name = f.get("model name", "?")
    try:
        family, model = int(f["cpu family"]), int(f["model"])
    except (KeyError, ValueError):
        return name
    arch = next((a for vendor, fam, lo, hi, a in _KNOWN
                 if name.startswith(vendor) and fam == family and lo <= model <= hi), None)
    return f"{name} (family {family} model {model}{': ' + arch if arch else ''})"


if __name__ == "__main__":
    print(cpu_description())
