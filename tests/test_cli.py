"""The shared ending of the report commands."""

import os

from lcr_larq import cli


def test_fail_prints_one_line_and_names_the_fix(capsys):
    assert cli.fail(ValueError("--samples must be >= 1")) == 2
    assert capsys.readouterr().err == "error: --samples must be >= 1\n"
    assert cli.fail(PermissionError(13, "Permission denied")) == 2
    assert capsys.readouterr().err == (
        "error: cannot write the report (Permission denied): check --output\n"
    )


def test_finish_report_prints_table_and_plots_beside_the_report(tmp_path, capsys):
    output = str(tmp_path / "sub" / "report.json")
    drawn = []
    assert cli.finish_report("TABLE", output, drawn.append, "plot.png") == 0
    expected = os.path.join(str(tmp_path / "sub"), "plot.png")
    assert drawn == [expected]
    assert capsys.readouterr().out == f"\nTABLE\n\nwrote {output}\nwrote {expected}\n"
    assert cli.finish_report("TABLE", output, None, "plot.png") == 0
    assert "plot.png" not in capsys.readouterr().out
