"""The long-running parts of a worker: the loop, its dispatcher, the ledger, the render
process and the signal handling."""
