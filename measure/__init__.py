"""measure: validate, queue, sign and deliver game events to the TUNE Measurement API.

Kept empty of imports so each Cloud Function loads only the modules it uses.
"""

__version__ = "0.1.0"
