"""The pipeline engine: claim a request, run one step, record its outcome, re-drive what stalled."""
