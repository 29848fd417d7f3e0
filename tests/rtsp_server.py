"""A real RTSP server for the tests: GStreamer's, serving a live H.264 test pattern at rtsp://127.0.0.1:PORT/live.

Run by the system Python (it has `gi`): `/usr/bin/python3 tests/rtsp_server.py PORT [WIDTH HEIGHT FPS [GOP
[PATTERN]]]` (GOP in frames, by default one second's worth; PATTERN one of videotestsrc's, `ball` by default).
Prints `ready` once it listens. Killed and restarted by the tests to simulate a camera going away.

Each client gets a stream of its own, from a keyframe, like a camera's: GStreamer's shared media (one pipeline for
all clients) answered clients that connected at the same moment with errors, and now and then aborted the server
(`gst_rtsp_media_get_rates: assertion failed`, gst-rtsp-server 1.22), which failed a test of three sources.

PATTERN may instead be the path of an H.264 MP4 (`*.mp4`): then each client gets a live stream of its own that
loops the file from its start at FPS, with timestamps that keep growing. Its frames were encoded once, by whoever
wrote the file, so the server costs almost no CPU however many clients connect (one machine playing many cameras:
`benchmarks/many_cameras.py`). WIDTH, HEIGHT and GOP are then the file's own.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def access_units(path):
    """The file's H.264 access units as (bytes, is a keyframe), and their caps."""
    pipeline = Gst.parse_launch(
        f'filesrc location="{path}" ! qtdemux ! h264parse config-interval=-1 '
        "! video/x-h264,stream-format=byte-stream,alignment=au ! appsink name=sink sync=false")
    sink = pipeline.get_by_name("sink")
    pipeline.set_state(Gst.State.PLAYING)
    units, caps = [], None
    while True:
        sample = sink.emit("pull-sample")
        if sample is None:
            break
        buffer = sample.get_buffer()
        units.append((buffer.extract_dup(0, buffer.get_size()), not buffer.has_flags(Gst.BufferFlags.DELTA_UNIT)))
        caps = caps or sample.get_caps()
    pipeline.set_state(Gst.State.NULL)
    if not units or not units[0][1]:
        sys.exit(f"{path} holds no H.264 stream starting with a keyframe")
    return units, caps


def looped(factory, path, fps):
    """Make each client's media push the file's access units in a loop, timestamped at `fps`."""
    units, caps = access_units(path)
    duration = Gst.SECOND // int(fps)

    def configure(_factory, media):
        source = media.get_element().get_by_name_recurse_up("src")
        source.set_property("caps", caps)
        count = [0]

        def need_data(src, _length):
            data, keyframe = units[count[0] % len(units)]
            buffer = Gst.Buffer.new_wrapped(data)
            buffer.pts = buffer.dts = count[0] * duration
            buffer.duration = duration
            if not keyframe:
                buffer.set_flags(Gst.BufferFlags.DELTA_UNIT)
            count[0] += 1
            src.emit("push-buffer", buffer)

        source.connect("need-data", need_data)

    factory.set_launch("( appsrc name=src format=time max-bytes=1000000 ! h264parse "
                       "! rtph264pay name=pay0 pt=96 config-interval=1 )")
    factory.connect("media-configure", configure)


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
    if pattern.endswith(".mp4"):
        looped(factory, pattern, fps)  # not shared: each client its own loop from the file's start
    else:
        factory.set_launch(
            f"( videotestsrc is-live=true pattern={pattern} ! video/x-raw,width={width},height={height},"
            f"framerate={fps}/1 ! videoconvert ! openh264enc gop-size={gop} ! h264parse "
            "! rtph264pay name=pay0 pt=96 config-interval=1 )")
    server.get_mount_points().add_factory("/live", factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{port}")
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
