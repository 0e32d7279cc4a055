"""The paper's Table 1 and Figure 1 from a benchmark run: ``passt report BENCH.json``.

The table has a row per variant and per peer of the run's training benchmarks, with the
paper's values (Titan RTX) beside ours and the ratios of speed and memory to PaSST-B, which
compare across devices (and, ``--vs``, to another variant of the run); the paper's other rows
carry the paper's values. The paper's AudioSet mAP and the proxy mAP of ``--maps`` are separate
columns. The figure plots training throughput against mAP in two panels, the paper's and this
run's, with circle areas proportional to memory per sample.
"""

from passt.report.inputs import load_maps, load_paper_table
from passt.report.row import Table1Row
from passt.report.settings import Table1Settings
from passt.report.table import build_table
from passt.report.table2 import Table2, load_paper_table2, write_table2
from passt.report.write import Report, write_report

__all__ = ["Report", "Table1Row", "Table1Settings", "Table2", "build_table", "load_maps",
           "load_paper_table", "load_paper_table2", "write_report", "write_table2"]
