// Scanning the other person's safety-number QR code with the camera. The
// frames are decoded in the page (jsQR, from npm); the core checks what
// was read against the number this device computes (verifyScanned) and
// marks the person verified only if they match.

import jsQR from "jsqr";

import { h } from "../dom";

const FRAME_MS = 150;
const GIVE_UP_MS = 60_000;

// scanQR shows the camera in host until a QR code is read (resolving with
// its text), the user stops, or a minute passes (resolving with
// undefined). Camera errors reject.
export async function scanQR(host: HTMLElement, signal: AbortSignal): Promise<string | undefined> {
  const stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false });
  const video = h("video", { class: "scan-video", "data-testid": "scan-video", muted: true, playsinline: true }) as HTMLVideoElement;
  video.srcObject = stream;
  host.append(video);
  const canvas = document.createElement("canvas");
  const g = canvas.getContext("2d", { willReadFrequently: true });
  const stop = () => {
    for (const t of stream.getTracks()) t.stop();
    video.remove();
  };
  try {
    await video.play();
    const until = Date.now() + GIVE_UP_MS;
    while (!signal.aborted && Date.now() < until) {
      if (g && video.videoWidth > 0) {
        canvas.width = video.videoWidth;
        canvas.height = video.videoHeight;
        g.drawImage(video, 0, 0);
        const img = g.getImageData(0, 0, canvas.width, canvas.height);
        const code = jsQR(img.data, img.width, img.height, { inversionAttempts: "dontInvert" });
        if (code && code.data !== "") return code.data;
      }
      await new Promise((r) => window.setTimeout(r, FRAME_MS));
    }
    return undefined;
  } finally {
    stop();
  }
}
