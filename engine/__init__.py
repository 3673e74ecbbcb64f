"""ipcc-engine: a telephony media engine for the IPCC ``multOrders`` API.

Data flow: request → orders → timeline → frames → sink; caller audio → dtmf → collector.
"""

import os

# The media loop is one thread by design. OpenBLAS's own threads spin beside it on the frame-sized matrix
# products of DTMF detection and were measured to double its CPU time; set before numpy is first imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
