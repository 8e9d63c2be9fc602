"""Play a WAV file into a live call and save what the peer says.

    python examples/play_and_record.py ws://127.0.0.1:8000/api/v1/sessions/$SID/calls/$CID/media \
        --key $KEY --play examples/hello.wav --save peer.wav

`examples/hello.wav` (16 kHz mono speech) ships with it.

Needs `websockets`, `numpy` and `soundfile` (all in Switchboard's own environment).
"""

import argparse
import asyncio
import json

import numpy as np
import soundfile
import websockets


async def main(url: str, key: str, play: str, save: str, seconds: float) -> None:
    audio, rate = soundfile.read(play, dtype="float32", always_2d=True)
    if rate != 16000:
        raise SystemExit("Give a 16 kHz file (e.g. sox in.wav -r 16000 -c 1 out.wav)")
    audio = audio.mean(axis=1)  # mono
    heard = []
    headers = {"Authorization": f"Bearer {key}"}
    async with websockets.connect(
        url, additional_headers=headers, compression=None
    ) as ws:
        ready = json.loads(await ws.recv())
        print("ready:", ready["call"]["state"])

        async def receive() -> None:
            async for message in ws:
                if isinstance(message, bytes):
                    heard.append(np.frombuffer(message, dtype="<f4"))
                elif json.loads(message)["type"] in ("mark", "ended"):
                    print(message)

        reader = asyncio.create_task(receive())
        # The server paces playout at real time: send up to 1 s per frame, no sleeping.
        for start in range(0, len(audio), 16000):
            await ws.send(audio[start : start + 16000].astype("<f4").tobytes())
        await ws.send(json.dumps({"type": "mark", "name": "played"}))
        await asyncio.sleep(seconds)
        reader.cancel()
    soundfile.write(save, np.concatenate(heard), 16000, subtype="PCM_16")
    print(f"saved {sum(map(len, heard)) / 16000:.1f} s of the peer's audio to {save}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--key", required=True)
    parser.add_argument("--play", required=True)
    parser.add_argument("--save", default="peer.wav")
    parser.add_argument("--seconds", type=float, default=12.0)
    args = parser.parse_args()
    asyncio.run(main(args.url, args.key, args.play, args.save, args.seconds))
