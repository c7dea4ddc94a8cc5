"""The dream in an export of a 440 Hz tone: per half-second, the residual
after a least-squares sine fit, in dB against the signal; and whether two
exports are identical."""
import sys
import numpy as np
import scipy.io.wavfile as wav

rate, a = wav.read(sys.argv[1])
_, b = wav.read(sys.argv[2])
print("exports bit-identical:", np.array_equal(a, b))
x = a[:, 0].astype(np.float64)
seg = rate // 2
t = np.arange(seg) / rate
line = []
for i in range(len(x) // seg):
    y = x[i * seg:(i + 1) * seg]
    tt = t + i * 0.5
    m = np.stack([np.sin(2 * np.pi * 440 * tt), np.cos(2 * np.pi * 440 * tt), np.ones_like(tt)], 1)
    c, *_ = np.linalg.lstsq(m, y, rcond=None)
    e = y - m @ c
    db = 20 * np.log10(max(np.sqrt(np.mean(e ** 2)), 1e-15) / max(np.sqrt(np.mean(y ** 2)), 1e-15))
    line.append("%.1f s: %.0f dB" % (i * 0.5, db))
print("residual after a sine fit:", ", ".join(line))
