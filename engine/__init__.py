"""ipcc-engine: a telephony media engine for the IPCC ``multOrders`` API.

Data flow: request → orders → timeline → frames → sink; caller audio → dtmf → collector.
"""

__version__ = "0.1.0"
