import hashlib
import re

import pandas as pd
import pytest

from effllm import economics
from effllm.datafiles import DataFileError, data_text, read_csv

COLUMNS = {"day": "date", "name": "str", "value": "float", "count": "int", "maybe": "float?"}


def write(pkg, text, name="t.csv"):
    (pkg / name).write_text(text)


def test_reads_and_converts_each_kind(fake_data_package):
    write(fake_data_package, 'day,name,value,count,maybe\n2025-01-27,NVDA,118.42,"818,830,900",\n')
    df = read_csv("t.csv", COLUMNS)
    assert df.loc[0, "day"] == pd.Timestamp("2025-01-27")
    assert df.loc[0, "value"] == 118.42 and df.loc[0, "count"] == 818_830_900
    assert pd.isna(df.loc[0, "maybe"])


def test_missing_file_names_the_file(fake_data_package):
    write(fake_data_package, "a\n1\n", name="other.csv")
    with pytest.raises(DataFileError, match=r"effllm/data/t.csv is missing.*found: other.csv"):
        data_text("t.csv")


def test_missing_column_is_named(fake_data_package):
    write(fake_data_package, "day,name,value,count\n2025-01-27,x,1,1\n")
    with pytest.raises(DataFileError, match=r"t.csv lacks column\(s\) \['maybe'\]"):
        read_csv("t.csv", COLUMNS)


@pytest.mark.parametrize(
    "row,message",
    [
        ("27/01/2025,x,1,1,", r"line 2: column 'day' has '27/01/2025', not a date"),
        ("2025-01-27,x,abc,1,", r"line 2: column 'value' has 'abc', not a float"),
        ("2025-01-27,,1,1,", r"line 2: column 'name' is empty"),
    ],
)
def test_malformed_values_name_line_and_column(fake_data_package, row, message):
    write(fake_data_package, "day,name,value,count,maybe\n" + row + "\n")
    with pytest.raises(DataFileError, match=message):
        read_csv("t.csv", COLUMNS)


def test_header_only_and_empty_files(fake_data_package):
    write(fake_data_package, "day,name\n")
    with pytest.raises(DataFileError, match="has a header but no rows"):
        read_csv("t.csv", {"day": "date"})
    write(fake_data_package, "")
    with pytest.raises(DataFileError, match="not a readable CSV"):
        read_csv("t.csv", {"day": "date"})


def test_deleting_the_cost_table_gives_a_clear_error(fake_data_package):
    with pytest.raises(DataFileError, match="deepseek_v3_training_cost.csv is missing"):
        economics.v3_training_cost()


def test_every_shipped_csv_is_documented_in_sources():
    from importlib import resources

    files = [p.name for p in resources.files("effllm.data").iterdir() if p.name.endswith(".csv")]
    sources = data_text("SOURCES.md")
    assert files, "no data files shipped"
    for name in files:
        assert f"## {name}" in sources, f"{name} has no section in SOURCES.md"


def test_a_path_outside_the_package_is_read_and_named_in_errors(tmp_path):
    path = tmp_path / "refreshed.csv"
    path.write_text("day,name,value,count,maybe\n2025-01-27,NVDA,118.42,1,\n")
    assert read_csv(path, COLUMNS).loc[0, "value"] == 118.42
    path.write_text("day,name,value,count,maybe\n2025-01-27,NVDA,x,1,\n")
    with pytest.raises(DataFileError, match=rf"{path}, line 2: column 'value' has 'x'"):
        read_csv(path, COLUMNS)
    with pytest.raises(DataFileError, match=r"data file .*gone.csv does not exist"):
        read_csv(tmp_path / "gone.csv", COLUMNS)


def test_every_shipped_csv_is_the_one_sources_md_vouches_for():
    from importlib import resources

    files = sorted(p.name for p in resources.files("effllm.data").iterdir() if p.suffix == ".csv")
    checksums = data_text("SOURCES.md").split("\n## Checksums\n")[1]
    listed = dict(re.findall(r"^- `([\w.]+\.csv)`: `([0-9a-f]{64})`$", checksums, re.M))
    assert sorted(listed) == files
    for name, digest in listed.items():
        lines = data_text(name).splitlines()
        assert hashlib.sha256("\n".join(lines).encode()).hexdigest() == digest, (
            f"{name} differs from the file SOURCES.md vouches for; if the change is meant, say "
            "where its figures come from and update the digest"
        )


def test_training_cost_table_is_the_one_sources_md_states():
    # "pre-training 2,664K, context extension 119K, post-training 5K (total 2,788K)"
    section = " ".join(data_text("SOURCES.md").split("## deepseek_v3_training_cost.csv")[1].split())
    stated = {
        stage: 1000 * int(k.replace(",", ""))
        for stage, k in re.findall(
            r"(pre-training|context extension|post-training|total) ([\d,]+)K", section
        )
    }
    table = economics.v3_training_cost().set_index("stage")["h800_gpu_hours"].to_dict()
    assert len(stated) == 4 and table == stated
