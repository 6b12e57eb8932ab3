"""Every `cargo lambda` command README.md shows, checked against the pinned cargo-lambda's own help.

    python readme_commands.py CARGO_LAMBDA README.md

For each command the README writes (in a code block or inline), the subcommand must exist and every
`--flag` and `-x` it passes must be one that subcommand's `--help` lists. A flag the pinned
cargo-lambda does not know fails the check, naming the README line; so does a README that shows no
`cargo lambda deploy` at all (the parser would then have checked nothing).
"""

import functools
import re
import subprocess
import sys

COMMAND = re.compile(r"cargo lambda ([a-z]+)((?:[ \t]+[^`\n#|]*)?)")
LONG = re.compile(r"(?<![\w-])--[a-z0-9][a-z0-9-]*")
SHORT = re.compile(r"(?<![\w-])-[a-zA-Z](?![\w-])")


def commands(readme):
    """(line number, subcommand, flags) of each `cargo lambda` command in the README."""
    found = []
    for number, line in enumerate(readme.splitlines(), start=1):
        for match in COMMAND.finditer(line):
            words = match.group(2)
            flags = LONG.findall(words) + SHORT.findall(words)
            found.append((number, match.group(1), flags))
    return found


@functools.cache
def known_flags(cargo_lambda, subcommand):
    """The flags `cargo lambda SUBCOMMAND --help` lists, or None if there is no such subcommand."""
    result = subprocess.run(
        [cargo_lambda, "lambda", subcommand, "--help"],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        return None
    return frozenset(LONG.findall(result.stdout)) | frozenset(SHORT.findall(result.stdout))


def main():
    cargo_lambda, readme_path = sys.argv[1], sys.argv[2]
    version = subprocess.run([cargo_lambda, "lambda", "--version"], capture_output=True, text=True)
    print(version.stdout.strip() or version.stderr.strip())
    with open(readme_path, encoding="utf-8") as readme:
        found = commands(readme.read())
    errors = []
    for number, subcommand, flags in found:
        known = known_flags(cargo_lambda, subcommand)
        if known is None:
            errors.append(f"{readme_path}:{number}: `cargo lambda {subcommand}` is no subcommand")
            continue
        for flag in flags:
            if flag not in known:
                errors.append(
                    f"{readme_path}:{number}: `cargo lambda {subcommand}` has no {flag} "
                    f"(`cargo lambda {subcommand} --help` does not list it)"
                )
    deploy = [flags for _, subcommand, flags in found if subcommand == "deploy"]
    if not deploy:
        errors.append(f"{readme_path} shows no `cargo lambda deploy`: nothing was checked")
    # The help text was read: every subcommand's lists at least `--help` itself.
    for subcommand in {subcommand for _, subcommand, _ in found}:
        known = known_flags(cargo_lambda, subcommand)
        if known is not None and "--help" not in known:
            errors.append(f"`cargo lambda {subcommand} --help` printed no flags: was it parsed?")
    for error in errors:
        print(error, file=sys.stderr)
    if errors:
        sys.exit(1)
    flags = sum(len(flags) for _, _, flags in found)
    subcommands = sorted({subcommand for _, subcommand, _ in found})
    print(
        f"{len(found)} `cargo lambda` commands in {readme_path} ({', '.join(subcommands)}), "
        f"{flags} flags, each listed by the subcommand's --help"
    )


if __name__ == "__main__":
    main()
