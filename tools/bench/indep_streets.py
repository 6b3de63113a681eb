#!/usr/bin/env python3
"""A second two-domain street-scene benchmark, written apart from `cbst synth` (no code shared,
another scene model), to check that the documented recipe carries to data it was never tuned on.

Developer-time only (numpy and Pillow); the build and the tests never need it.

Source: game-like flat saturated colours, a high horizon, wide roads, few people, more trucks
and buses. Target: another colour table in which several classes cross (sidewalk near road,
sign near light, person near rider), sensor noise, blur, a vignette, haze and exposure
changes, a lower camera over narrower streets, more people and two-wheelers. Classes are
told apart by shape, size and context: thin poles carrying lights and signs, riders on
bicycles and motorcycles, people on the sidewalks, vehicles on the road, scaled by depth.

Writes the GTA5 layout (gta5/images, gta5/labels: palette PNGs of Cityscapes labelIds) and the
Cityscapes layout (cityscapes/leftImg8bit and gtFine, train and val) at HxW:

    python3 tools/bench/indep_streets.py --out DIR --seed 1 [--size 128x256]
    tools/bench/indep_recipe.sh DIR RUNDIR      # the README's commands on it, and the table
"""
import argparse, json, os
import numpy as np
from PIL import Image, ImageDraw, ImageFilter

ID = dict(road=7, sidewalk=8, building=11, wall=12, fence=13, pole=17, light=19, sign=20,
          veg=21, terrain=22, sky=23, person=24, rider=25, car=26, truck=27, bus=28,
          train=31, motor=32, bike=33)

SRC_COL = dict(road=(90, 90, 95), sidewalk=(190, 170, 150), building=(160, 80, 60),
               wall=(200, 200, 120), fence=(120, 100, 40), pole=(40, 40, 40),
               light=(250, 200, 0), sign=(230, 30, 30), veg=(40, 160, 40),
               terrain=(150, 200, 90), sky=(110, 170, 250), person=(250, 120, 170),
               rider=(255, 60, 60), car=(30, 60, 200), truck=(20, 120, 140),
               bus=(240, 140, 20), train=(120, 40, 160), motor=(0, 200, 200),
               bike=(140, 30, 90))
# The target's table: muted, and sidewalk/terrain/wall drift towards their neighbours.
TGT_COL = dict(road=(110, 105, 100), sidewalk=(125, 118, 110), building=(120, 115, 125),
               wall=(140, 135, 115), fence=(100, 95, 80), pole=(70, 70, 75),
               light=(210, 190, 90), sign=(200, 170, 60), veg=(70, 110, 60),
               terrain=(115, 125, 85), sky=(190, 200, 215), person=(120, 80, 90),
               rider=(150, 70, 60), car=(80, 90, 120), truck=(90, 120, 120),
               bus=(180, 150, 90), train=(100, 80, 120), motor=(70, 130, 130),
               bike=(110, 60, 80))


class Canvas:
    def __init__(self, h, w, cols, rng, jitter):
        self.h, self.w, self.rng = h, w, rng
        self.img = Image.new("RGB", (w, h))
        self.lab = Image.new("L", (w, h), 0)
        self.di = ImageDraw.Draw(self.img)
        self.dl = ImageDraw.Draw(self.lab)
        self.cols, self.jitter = cols, jitter

    def col(self, cls):
        c = np.array(self.cols[cls], float) + self.rng.normal(0, self.jitter, 3)
        return tuple(int(v) for v in np.clip(c, 0, 255))

    def poly(self, cls, pts):
        pts = [(float(x), float(y)) for x, y in pts]
        self.di.polygon(pts, fill=self.col(cls))
        self.dl.polygon(pts, fill=ID[cls])

    def rect(self, cls, x0, y0, x1, y1):
        self.poly(cls, [(x0, y0), (x1, y0), (x1, y1), (x0, y1)])

    def ellipse(self, cls, x0, y0, x1, y1):
        self.di.ellipse([x0, y0, x1, y1], fill=self.col(cls))
        self.dl.ellipse([x0, y0, x1, y1], fill=ID[cls])

    def line(self, cls, pts, width):
        w = max(1, int(round(width)))
        self.di.line(pts, fill=self.col(cls), width=w)
        self.dl.line(pts, fill=ID[cls], width=w)

    def ring(self, cls, cx, cy, r, width):
        w = max(1, int(round(width)))
        box = [cx - r, cy - r, cx + r, cy + r]
        self.di.ellipse(box, outline=self.col(cls), width=w)
        self.dl.ellipse(box, outline=ID[cls], width=w)


def person(c, x, yb, s, cls="person"):
    """A person standing at (x, yb) of height s."""
    hw = 0.13 * s
    c.ellipse("person" if cls == "person" else cls, x - 0.09 * s, yb - s, x + 0.09 * s, yb - 0.8 * s)
    c.rect(cls, x - hw, yb - 0.82 * s, x + hw, yb - 0.42 * s)
    c.line(cls, [(x - 0.06 * s, yb - 0.45 * s), (x - 0.09 * s, yb)], 0.08 * s)
    c.line(cls, [(x + 0.06 * s, yb - 0.45 * s), (x + 0.09 * s, yb)], 0.08 * s)


def two_wheeler(c, x, yb, s, kind):
    """A bicycle or motorcycle with its rider, wheels on the ground at yb; s ~ rider height."""
    r = 0.17 * s if kind == "bike" else 0.2 * s
    gap = 0.32 * s
    for dx in (-gap, gap):
        if kind == "bike":
            c.ring("bike", x + dx, yb - r, r, max(1, 0.05 * s))
        else:
            c.ellipse("motor", x + dx - r, yb - 2 * r, x + dx + r, yb)
    if kind == "bike":
        c.line("bike", [(x - gap, yb - r), (x, yb - 2 * r), (x + gap, yb - r)], max(1, 0.05 * s))
    else:
        c.rect("motor", x - gap, yb - 2.2 * r, x + gap, yb - 1.1 * r)
    # rider: torso above the frame, legs down to the pedals
    c.ellipse("rider", x - 0.08 * s, yb - 1.25 * s, x + 0.08 * s, yb - 1.07 * s)
    c.rect("rider", x - 0.11 * s, yb - 1.08 * s, x + 0.09 * s, yb - 0.62 * s)
    c.line("rider", [(x, yb - 0.64 * s), (x + 0.05 * s, yb - 0.3 * s)], 0.08 * s)


def vehicle(c, kind, x, yb, s):
    """Side-on boxes: s is the vehicle's height in pixels."""
    if kind == "car":
        L, H = 2.2 * s, s
        c.rect("car", x - L / 2, yb - 0.6 * H, x + L / 2, yb - 0.15 * H)
        c.poly("car", [(x - 0.3 * L, yb - 0.6 * H), (x - 0.15 * L, yb - H), (x + 0.2 * L, yb - H),
                       (x + 0.35 * L, yb - 0.6 * H)])
        wr = 0.18 * H
        for dx in (-0.3 * L, 0.3 * L):
            c.ellipse("car", x + dx - wr, yb - 2 * wr, x + dx + wr, yb)
    elif kind == "truck":
        L, H = 2.6 * s, s
        c.rect("truck", x - L / 2, yb - H, x + 0.2 * L, yb - 0.15 * H)
        c.rect("truck", x + 0.22 * L, yb - 0.7 * H, x + L / 2, yb - 0.15 * H)
        wr = 0.14 * H
        for dx in (-0.35 * L, 0.0, 0.38 * L):
            c.ellipse("truck", x + dx - wr, yb - 2 * wr, x + dx + wr, yb)
    elif kind == "bus":
        L, H = 3.4 * s, s
        c.rect("bus", x - L / 2, yb - H, x + L / 2, yb - 0.12 * H)
        wr = 0.12 * H
        for dx in (-0.35 * L, 0.35 * L):
            c.ellipse("bus", x + dx - wr, yb - 2 * wr, x + dx + wr, yb)
    else:  # train: long, on the far side, low windows band
        L, H = 5.0 * s, s
        c.rect("train", x - L / 2, yb - H, x + L / 2, yb - 0.05 * H)
        c.poly("train", [(x + L / 2, yb - H), (x + L / 2 + 0.3 * H, yb - 0.5 * H), (x + L / 2, yb - 0.05 * H)])


def scene(h, w, rng, domain):
    tgt = domain == "target"
    c = Canvas(h, w, TGT_COL if tgt else SRC_COL, rng, 12 if tgt else 6)
    hz = h * (rng.uniform(0.42, 0.52) if tgt else rng.uniform(0.30, 0.40))  # horizon
    vx = w * rng.uniform(0.35, 0.65)                                       # vanishing point
    road_half = w * (rng.uniform(0.30, 0.45) if tgt else rng.uniform(0.50, 0.75))
    walk = road_half * (rng.uniform(0.5, 0.8) if tgt else rng.uniform(0.25, 0.45))

    def xat(frac, y):  # x of a line from the vanishing point, frac * road_half at the bottom
        t = (y - hz) / (h - hz)
        return vx + frac * t * road_half

    def depth(y):  # pixels per metre-ish at image row y
        return max(0.0, (y - hz) / (h - hz))

    c.rect("sky", 0, 0, w, hz + 1)
    # far band: buildings / vegetation / wall, standing on the horizon
    x = -rng.uniform(0, 20)
    while x < w:
        bw = rng.uniform(0.06, 0.25) * w
        r = rng.random()
        if r < 0.6:
            top = hz - rng.uniform(0.1, 0.35 if not tgt else 0.45) * h
            c.rect("building", x, top, x + bw, hz + 1)
            # windows in the building's own class (texture, not another class)
            for wy in np.arange(top + 3, hz - 3, 6):
                for wx in np.arange(x + 2, x + bw - 3, 6):
                    c.di.rectangle([wx, wy, wx + 2, wy + 2], fill=tuple(int(v * 0.7) for v in c.col("building")))
        elif r < 0.85:
            top = hz - rng.uniform(0.08, 0.25) * h
            c.ellipse("veg", x, top, x + bw, hz + 0.5 * (hz - top))
        else:
            c.rect("wall", x, hz - rng.uniform(0.03, 0.08) * h, x + bw, hz + 1)
        x += bw
    # ground: terrain everywhere below the horizon, then sidewalks and the road
    c.rect("terrain", 0, hz, w, h)
    for side in (-1, 1):
        c.poly("sidewalk", [(vx, hz), (xat(side * 1.0, h), h), (xat(side * (1 + walk / road_half), h), h)])
    c.poly("road", [(vx, hz), (xat(-1, h), h), (xat(1, h), h)])
    # fences / walls along the outer edge of the sidewalks
    for side in (-1, 1):
        if rng.random() < 0.6:
            cls = "fence" if rng.random() < 0.6 else "wall"
            y0, y1 = hz + 0.05 * (h - hz), h
            o = side * (1 + walk / road_half)
            ht = 0.25 if cls == "fence" else 0.18
            pts = [(xat(o, y0), y0), (xat(o, y1), y1), (xat(o, y1), y1 - ht * (h - hz)),
                   (xat(o, y0), y0 - ht * (y0 - hz))]
            c.poly(cls, pts)
    # a train far away now and then
    if rng.random() < (0.15 if tgt else 0.25):
        yb = hz + rng.uniform(0.02, 0.08) * (h - hz)
        vehicle(c, "train", rng.uniform(0, w), yb, max(4, 0.35 * h * depth(yb) + 6))

    objs = []
    n_people = rng.poisson(5 if tgt else 2)
    n_wheel = rng.poisson(2.5 if tgt else 1.0)
    n_veh = rng.poisson(2.5 if tgt else 3.5)
    n_poles = rng.poisson(3.5)
    for _ in range(n_people):
        yb = rng.uniform(hz + 4, h)
        objs.append(("person", yb, rng.uniform(0.9, 1.1)))
    for _ in range(n_wheel):
        objs.append(("bike" if rng.random() < (0.7 if tgt else 0.4) else "motor", rng.uniform(hz + 4, h), 1.0))
    vk = (["car"] * 6 + ["truck"] * 1 + ["bus"] * 1) if tgt else (["car"] * 4 + ["truck"] * 2 + ["bus"] * 2)
    for _ in range(n_veh):
        objs.append((vk[rng.integers(len(vk))], rng.uniform(hz + 3, h), 1.0))
    for _ in range(n_poles):
        objs.append(("pole", rng.uniform(hz + 2, h), 1.0))
    if rng.random() < 0.5:
        objs.append(("vegsmall", rng.uniform(hz + 2, h), 1.0))
    objs.sort(key=lambda o: o[1])  # far first
    for kind, yb, f in objs:
        d = depth(yb)
        side = -1 if rng.random() < 0.5 else 1
        if kind in ("person",):
            x = xat(side * rng.uniform(1.05, 1 + walk / road_half), yb)
            person(c, x, yb, f * (0.45 * h * d + 3))
        elif kind in ("bike", "motor"):
            x = xat(side * rng.uniform(0.6, 1.1), yb)
            two_wheeler(c, x, yb, 0.4 * h * d + 3, kind)
        elif kind in ("car", "truck", "bus"):
            x = xat(rng.uniform(-0.8, 0.8), yb)
            s = {"car": 0.3, "truck": 0.42, "bus": 0.45}[kind] * h * d + 3
            vehicle(c, kind, x, yb, s)
        elif kind == "pole":
            x = xat(side * rng.uniform(1.02, 1.2), yb)
            ph = 0.9 * h * d + 8
            pw = max(1, 0.025 * h * d + 0.6)
            c.line("pole", [(x, yb), (x, yb - ph)], pw)
            r = rng.random()
            if r < 0.4:  # traffic light: a small vertical box near the top
                bw, bh = 3 * pw + 1, 7 * pw + 2
                c.rect("light", x - bw / 2, yb - ph - bh * 0.2, x + bw / 2, yb - ph + bh * 0.8)
            elif r < 0.8:  # sign: a triangle or a disc, beside the pole
                sr = 3.5 * pw + 1.5
                cy = yb - ph + sr
                if rng.random() < 0.5:
                    c.ellipse("sign", x - sr, cy - sr, x + sr, cy + sr)
                else:
                    c.poly("sign", [(x - sr, cy - sr), (x + sr, cy - sr), (x, cy + sr)])
        else:  # a tree on the sidewalk: trunk and crown are both vegetation
            x = xat(side * rng.uniform(1.05, 1.3), yb)
            th = 1.1 * h * d + 8
            c.line("veg", [(x, yb), (x, yb - th)], max(1, 0.04 * h * d + 1))
            c.ellipse("veg", x - 0.3 * th, yb - 1.3 * th, x + 0.3 * th, yb - 0.7 * th)

    img = np.asarray(c.img, dtype=np.float32)
    lab = np.asarray(c.lab, dtype=np.uint8)
    if tgt:
        img = img + rng.normal(0, 10, img.shape)                       # sensor noise
        yy = np.linspace(-1, 1, h)[:, None]; xx = np.linspace(-1, 1, w)[None, :]
        vig = 1 - 0.35 * (xx ** 2 + yy ** 2) / 2                        # vignette
        img = img * vig[..., None]
        haze = rng.uniform(0.05, 0.25)
        img = (1 - haze) * img + haze * 200                             # haze
        img = img * rng.uniform(0.7, 1.15)                              # exposure
        out = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
        out = out.filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 0.9)))
    else:
        img = img + rng.normal(0, 3, img.shape)
        out = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    return out, lab


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", default="128x256")
    ap.add_argument("--source", type=int, default=200)
    ap.add_argument("--target-train", type=int, default=200)
    ap.add_argument("--target-val", type=int, default=100)
    a = ap.parse_args()
    h, w = (int(v) for v in a.size.split("x"))
    pal = [0] * 768
    g = os.path.join(a.out, "gta5")
    os.makedirs(os.path.join(g, "images"), exist_ok=True)
    os.makedirs(os.path.join(g, "labels"), exist_ok=True)
    rng = np.random.default_rng([a.seed, 1])
    for i in range(a.source):
        im, lab = scene(h, w, rng, "source")
        im.save(os.path.join(g, "images", f"{i + 1:05d}.png"))
        p = Image.fromarray(lab, mode="P"); p.putpalette(pal)
        p.save(os.path.join(g, "labels", f"{i + 1:05d}.png"))
    cs = os.path.join(a.out, "cityscapes")
    for split, n, sub in (("train", a.target_train, 2), ("val", a.target_val, 3)):
        rng = np.random.default_rng([a.seed, sub])
        for d in ("leftImg8bit", "gtFine"):
            os.makedirs(os.path.join(cs, d, split, "elsewhere"), exist_ok=True)
        for i in range(n):
            im, lab = scene(h, w, rng, "target")
            stem = f"elsewhere_{i:06d}_000019"
            im.save(os.path.join(cs, "leftImg8bit", split, "elsewhere", stem + "_leftImg8bit.png"))
            Image.fromarray(lab, mode="L").save(os.path.join(cs, "gtFine", split, "elsewhere", stem + "_gtFine_labelIds.png"))
    json.dump(dict(generator="indep/gen.py", seed=a.seed, size=a.size), open(os.path.join(a.out, "info.json"), "w"))


if __name__ == "__main__":
    main()
