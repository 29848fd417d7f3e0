"""A real RTSP server for the tests: GStreamer's, serving a live H.264 test pattern at rtsp://127.0.0.1:PORT/live.

Run by the system Python (it has `gi`): `/usr/bin/python3 tests/rtsp_server.py PORT [WIDTH HEIGHT FPS [GOP
[PATTERN]]]` (GOP in frames, by default one second's worth; PATTERN one of videotestsrc's, `ball` by default).
Prints `ready` once it listens. Killed and restarted by the tests to simulate a camera going away.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> None:
    port = sys.argv[1]
    width, height, fps = (sys.argv[2:5] + ["320", "240", "30"][len(sys.argv[2:5]):])
    gop = sys.argv[5] if len(sys.argv) > 5 else fps
    pattern = sys.argv[6] if len(sys.argv) > 6 else "ball"
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f"( videotestsrc is-live=true pattern={pattern} ! video/x-raw,width={width},height={height},framerate={fps}/1 "
        f"! videoconvert ! openh264enc gop-size={gop} ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )")
    factory.set_shared(True)
    server.get_mount_points().add_factory("/live", factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{port}")
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
