"""read_rnaseq: both orientations, a sample column, empty cells as NaN, text values refused with the gene."""

import numpy as np
import pytest

from gliotype.cohort.tables import read_ppi, read_rnaseq


def test_samples_as_rows_with_a_sample_column(tmp_path):
    path = tmp_path / "rnaseq.tsv"
    path.write_text("patient_id\tsample_id\tEGFR\tIDH1\nP1\tP1-L1\t1.5\t\nP1\tP1-L2\t2\t3\nP2\tP2-L1\t-1\t4e-1\n")
    table = read_rnaseq(path)
    assert table.index.tolist() == ["P1-L1", "P1-L2", "P2-L1"] and table.index.name == "sample_id"
    assert table.columns.tolist() == ["patient_id", "EGFR", "IDH1"]
    assert table.patient_id.tolist() == ["P1", "P1", "P2"]
    np.testing.assert_array_equal(table.EGFR, [1.5, 2.0, -1.0])
    assert np.isnan(table.IDH1.iloc[0]) and table.IDH1.iloc[2] == pytest.approx(0.4)


def test_genes_as_rows_are_transposed(tmp_path):
    path = tmp_path / "rnaseq.csv"
    path.write_text("gene,P1,P2\nEGFR,1,2\nIDH1,3,\n")
    table = read_rnaseq(path)
    assert table.index.tolist() == ["P1", "P2"] and table.columns.tolist() == ["patient_id", "EGFR", "IDH1"]
    np.testing.assert_array_equal(table.EGFR, [1.0, 2.0])
    assert table.IDH1.iloc[0] == 3 and np.isnan(table.IDH1.iloc[1])


def test_text_values_are_refused_naming_the_gene(tmp_path):
    path = tmp_path / "rnaseq.tsv"
    path.write_text("patient_id\tEGFR\tIDH1\nP1\t1\thigh\n")
    with pytest.raises(ValueError, match=r"1 genes hold text, e.g. \['IDH1'\] \(first value 'high'\)"):
        read_rnaseq(path)


def test_unknown_orientation(tmp_path):
    path = tmp_path / "rnaseq.tsv"
    path.write_text("foo\tbar\nx\t1\n")
    with pytest.raises(ValueError, match="cannot tell patients from genes"):
        read_rnaseq(path)


def test_ppi_edges_without_a_gene_symbol_are_dropped(tmp_path):
    path = tmp_path / "ppi.csv"
    path.write_text("symbol_1,symbol_2,combined_score\nTP53,MDM2,999\n,EGFR,400\nIDH1, ,300\nATRX,TP53,700\n")
    ppi = read_ppi(path)
    assert ppi.values.tolist() == [["TP53", "MDM2", 999.0], ["ATRX", "TP53", 700.0]]
