// What the test pages read off a <video>, shared by player.html (hls.js), shaka.html and
// videojs.html: which moment of the film is on screen, and how much of it is buffered.
"use strict";

// Mean brightness (0-255) of the frame on screen: which part of the movie is playing.
function brightnessOf(video) {
  const canvas = document.createElement("canvas");
  canvas.width = 32;
  canvas.height = 18;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(video, 0, 0, canvas.width, canvas.height);
  const pixels = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  let sum = 0;
  for (let i = 0; i < pixels.length; i += 4) {
    sum += (pixels[i] + pixels[i + 1] + pixels[i + 2]) / 3;
  }
  return sum / (pixels.length / 4);
}

// [currentTime, the frame number the picture shows] read together: the film of
// tests/media_files.py make_counted spells its frame number in 16 bars, least significant left.
function frameOf(video) {
  const w = video.videoWidth, h = video.videoHeight;
  const grab = document.createElement("canvas");
  grab.width = w;
  grab.height = h;
  const ctx = grab.getContext("2d", { willReadFrequently: true });
  const time = video.currentTime;
  ctx.drawImage(video, 0, 0, w, h);
  const row = ctx.getImageData(0, Math.floor(h / 2), w, 1).data;
  let number = 0;
  for (let bit = 0; bit < 16; bit++) {
    const x = Math.floor((bit + 0.5) * w / 16);
    if (row[4 * x] > 128) {
      number |= 1 << bit;
    }
  }
  return [time, number];
}

// The end of what is buffered, in seconds of the film.
function bufferedEndOf(video) {
  return video.buffered.length ? video.buffered.end(video.buffered.length - 1) : 0;
}
