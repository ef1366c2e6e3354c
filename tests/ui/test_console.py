"""Terraform's progress lines as the tasks echo them."""

from __future__ import annotations

import pytest

from pipelines.ui import console as console_module


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        (
            "module.b.aws_s3_bucket_lifecycle_configuration.this: Creation complete after 55s "
            "[id=mlops-local]",
            "module.b.aws_s3_bucket_lifecycle_configuration.this: Creation complete after 55s",
        ),
        ("module.b.aws_kms_key.this[0]: Creating...", "module.b.aws_kms_key.this[0]: Creating..."),
        (
            "aws_iam_role.this: Destruction complete after 1s",
            "aws_iam_role.this: Destruction complete after 1s",
        ),
        ("Plan: 12 to add, 0 to change, 0 to destroy.", None),
    ],
)
def test_progress_keeps_each_resources_duration_and_drops_the_rest(monkeypatch, line, shown):
    printed: list[str] = []
    monkeypatch.setattr(console_module.console, "print", lambda text: printed.append(text))
    console_module.terraform_progress(line)
    if shown is None:
        assert printed == []
    else:
        assert printed == [f"  [dim]{shown}[/]"]


def test_an_error_quoting_brackets_is_printed_as_it_is(monkeypatch, capsys):
    from invoke.exceptions import Exit
    from rich.console import Console

    from pipelines.core.errors import MlopsError

    monkeypatch.setattr(console_module, "err_console", Console(stderr=True, width=200))
    with pytest.raises(Exit), console_module.exit_on_error():
        raise MlopsError("File [/bold]x[red] is broken.")
    assert "Error: File [/bold]x[red] is broken." in capsys.readouterr().err


def test_outputs_fit_a_table_or_else_read_as_name_value_lines():
    import io

    from rich.console import Console

    arn = "arn:aws:iam::123456789012:role/mlops-local-sagemaker-execution-role-of-this-stack"
    values = {"execution_role_arn": arn, "endpoint_names": {"default": "['e']"}, "kms": None}
    table = console_module.key_value_table("Outputs: local", values)

    def shown(width: int) -> str:
        printer = Console(width=width, record=True, color_system=None, file=io.StringIO())
        console_module.print_all([table], to=printer)
        return printer.export_text()

    wide = shown(200)
    assert f"│ execution_role_arn │ {arn}" in wide
    assert "{'default': \"['e']\"}" in wide  # not read as markup
    narrow = shown(60)
    assert f"execution_role_arn:\n{arn}\n" in narrow  # whole, on a line of its own
    assert "kms: -" in narrow
