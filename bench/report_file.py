"""The benchmark scripts' reports: Markdown lines written atomically (a killed run leaves the old file)."""
import os


def write_lines(path, lines):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)
    print(f"wrote {path}")
