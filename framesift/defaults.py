"""The defaults of framesift's options, each named once: `framesift run` (`framesift.run_options`), `framesift serve`
and the library functions they call take them from here."""

from __future__ import annotations

TARGET = "framesift-data"  # the dataset folder (with a workflow, or for serve: the folder of datasets)
OUTBOX = "framesift-outbox"  # the folder of remote targets' outboxes
OUTBOX_MAX_BYTES = 1 << 30  # an outbox refuses (and counts) new datapoints past this many bytes pending
REDIS_FALLBACK = "pause"  # while Redis is unreachable: collect nothing (or "memory": local budgets)
REPLAY_LEASE_S = 30.0  # a box of a fleet that stopped answering keeps a recording this long
CONFIG_REFRESH_S = 60.0  # between reads of a configuration store that announces no change (the Roboflow API)
DEVICE = "auto"  # TensorRT, else CUDA, else the CPU: the first that loads
CONFIDENCE = 0.25  # a model's confidence threshold
IOU = 0.45  # a model's IoU threshold for non-maximum suppression
MAX_DETECTIONS = 300  # the most detections a model gives per image
MAX_CANDIDATES = 3000  # the most confident anchors that enter NMS (Ultralytics caps them too)
RTSP_TRANSPORT = "tcp"
DRAIN_TIMEOUT_S = 10.0  # for writing queued datapoints at the end
LISTEN_HOST = "127.0.0.1"  # where /metrics, /live and serve listen: this machine only
STATUS_INTERVAL_S = 60.0  # between status lines when stderr is not a terminal
SERVE_PORT = 9001  # serve's, as Roboflow's inference server's
MAX_PENDING = 64  # requests serve keeps waiting for the model; more are answered 503
MAX_DATASETS = 64  # datasets serve collects at once
MAX_BODY_BYTES = 32 << 20  # serve answers larger requests 413
