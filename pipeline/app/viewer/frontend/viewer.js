// PleuraRisk CT viewer: a Streamlit (components v1) iframe around NiiVue.
//
// Python sends (args): ct_key (the case: loaded once per ct_key), previews (coarse copies, coarsest
// first: [{step: [x, y, z], url}]), ct_url (the CT as NIfTI; for a large CT null at first: the viewer
// shows the previews and asks for it, see askForCt), roi_url/roi_key
// (the ROI mask on the CT grid, or null), pick ("seed" | "add" | "remove" | null: what a left click
// means), centre_lps/centre_seq (move the crosshair there when centre_seq changes), height (px).
// Everything after loading (slices, window/level, zoom, pan, ROI style) happens here, in the browser.
// The component returns a click as {kind, lps_mm: [x, y, z], seq, need_ct}: physical LPS mm as ITK
// reports them (need_ct: the ct_key whose full CT the viewer still waits for, or null), or the
// request {kind: "load", need_ct, seq}. NiiVue's world space is RAS (x to the left-to-right... i.e. NIfTI convention), so x and y flip.
"use strict";
(function () {
  // wall-clock marks of the loading steps (epoch ms), read by bench/viewer.py
  const marks = [];
  function mark(name) { marks.push({ name: name, t: performance.timeOrigin + performance.now() }); }
  mark("viewer script starts");
  const NV = window.niivue;
  const PRESETS = { lung: { width: 1500, level: -600 }, mediastinum: { width: 350, level: 40 } };
  const VIEWS = { multi: NV.SLICE_TYPE.MULTIPLANAR, axial: NV.SLICE_TYPE.AXIAL,
                  coronal: NV.SLICE_TYPE.CORONAL, sagittal: NV.SLICE_TYPE.SAGITTAL };
  const PICK_TEXT = {
    seed: "Click inside the tumour (any slice, any plane) to segment it.",
    add: "Click where the ROI should also grow.",
    remove: "Click where the ROI should not be.",
  };
  const $ = (id) => document.getElementById(id);
  const body = document.body;
  const wrap = $("wrap");

  function post(type, data) {
    window.parent.postMessage(Object.assign({ isStreamlitMessage: true, type: type }, data || {}), "*");
  }

  const nv = new NV.Niivue({
    backColor: [0, 0, 0, 1],
    crosshairColor: [1.0, 0.8, 0.0, 0.85],
    crosshairWidth: 1,
    isColorbar: false,
    isOrientCube: false,
    show3Dcrosshair: false,
    multiplanarShowRender: NV.SHOW_RENDER.NEVER,
    isRadiologicalConvention: true,
    loadingText: "",
    logLevel: "error",
    textHeight: 0.04,
    dragMode: NV.DRAG_MODE.windowing,
    mouseEventConfig: {
      leftButton: { primary: NV.DRAG_MODE.crosshair, withShift: NV.DRAG_MODE.windowing, withCtrl: NV.DRAG_MODE.pan },
      rightButton: NV.DRAG_MODE.windowing,
      centerButton: NV.DRAG_MODE.pan,
    },
  });
  window.pleuraViewer = { nv: nv, marks: marks }; // for the browser tests and benchmark (read-only use)

  const state = { ctKey: null, roiKey: null, steps: [1, 1, 1], shape: null, centreSeq: null, pick: null, seq: 0, loading: null,
                  window: "lung", roiShown: true, roiStyle: "outline", roiOpacity: 0.8, view: "multi" };

  // ------------------------------------------------------------------ helpers
  const rasToLps = (m) => [-m[0], -m[1], m[2]];
  const lpsToRas = (m) => [-m[0], -m[1], m[2]];
  const fmt = (v) => (Math.round(v * 10) / 10).toFixed(1);

  function ct() { return nv.volumes.length > 0 ? nv.volumes[0] : null; }
  function roi() { return nv.volumes.length > 1 ? nv.volumes[1] : null; }

  function huAt(rasMm) {
    const v = ct();
    if (!v) return null;
    const vox = v.mm2vox(rasMm);
    const dims = v.hdr.dims;
    if (vox[0] < 0 || vox[1] < 0 || vox[2] < 0 || vox[0] >= dims[1] || vox[1] >= dims[2] || vox[2] >= dims[3]) return null;
    // vox: the CT's own (ITK x, y, z) voxel index; in a preview (every state.steps[axis]-th voxel,
    // same origin) that of the sampled voxel nearest to the point, whose HU this is. (NiiVue's
    // mm2vox/getValue index its RAS-reoriented copy, whose x and y run the other way for a CT
    // stored in LPS order: the index shown comes from the file's own affine.)
    const k = state.steps;
    const own = fileVoxel(v, rasMm);
    return { vox: [own[0] * k[0], own[1] * k[1], own[2] * k[2]], hu: v.getValue(vox[0], vox[1], vox[2]) };
  }
  function fileVoxel(v, ras) {
    // the NIfTI file's voxel (i, j, k) nearest to RAS mm ``ras``: inverse of hdr.affine (rows)
    const A = v.hdr.affine;
    const m = [0, 1, 2].map((r) => [A[r][0], A[r][1], A[r][2]]);
    const b = [0, 1, 2].map((r) => ras[r] - A[r][3]);
    const det = (p) => p[0][0] * (p[1][1] * p[2][2] - p[1][2] * p[2][1]) - p[0][1] * (p[1][0] * p[2][2] - p[1][2] * p[2][0])
      + p[0][2] * (p[1][0] * p[2][1] - p[1][1] * p[2][0]);
    const d = det(m);
    return [0, 1, 2].map((c) => Math.round(det(m.map((row, r) => row.map((x, j) => (j === c ? b[r] : x)))) / d)); // Cramer
  }
  const isPreview = () => state.steps.some((k) => k > 1);
  const huNote = () => (isPreview() ? " (preview: nearest sampled voxel)" : "");
  function sliceCount() { return state.shape ? state.shape[2] : ct().hdr.dims[3]; }

  function applyWindow(width, level) {
    const v = ct();
    if (!v) return;
    if (v.cal_min !== level - width / 2 || v.cal_max !== level + width / 2) {
      v.cal_min = level - width / 2;
      v.cal_max = level + width / 2;
      nv.updateGLVolume(); // re-renders every layer: seconds without a GPU
    }
    showWindow();
  }
  function showWindow() {
    const v = ct();
    if (!v) return;
    const w = v.cal_max - v.cal_min, l = (v.cal_max + v.cal_min) / 2;
    $("wl").textContent = "W " + Math.round(w) + " / L " + Math.round(l);
  }

  function applyRoiStyle(refresh) {
    // NiiVue outlines an overlay in black where a voxel outside it touches a fully opaque voxel
    // inside it: in outline mode the ROI layer is opaque and its fill faint (a quarter of the
    // opacity control); in fill mode the opacity control sets the fill.
    const r = roi();
    $("roi-controls").classList.toggle("disabled", !r);
    if (!r) return;
    const outline = state.roiStyle === "outline";
    nv.overlayOutlineWidth = outline && state.roiShown ? 1.0 : 0.0;
    nv.overlayAlphaShader = outline ? 0.25 * state.roiOpacity : 1.0;
    r.opacity = !state.roiShown ? 0.0 : outline ? 1.0 : state.roiOpacity;
    if (refresh !== false) nv.updateGLVolume();
  }

  function setView(view) {
    state.view = view;
    nv.setSliceType(VIEWS[view]);
    document.querySelectorAll("[data-view]").forEach((b) => b.classList.toggle("on", b.dataset.view === view));
  }

  function sliceText() {
    const v = ct();
    if (!v) return "";
    const ras = nv.frac2mm(nv.scene.crosshairPos);
    const lps = rasToLps(ras);
    const at = huAt([ras[0], ras[1], ras[2]]);
    let s = "Crosshair x " + fmt(lps[0]) + " · y " + fmt(lps[1]) + " · z " + fmt(lps[2]) + " mm";
    if (at) s += " · voxel (" + at.vox.join(", ") + ") · slice " + (at.vox[2] + 1) + "/" + sliceCount() + " · " + Math.round(at.hu) + " HU" + huNote();
    return s;
  }
  function showCrosshair() {
    $("cross").textContent = sliceText();
    body.dataset.crossLps = rasToLps(nv.frac2mm(nv.scene.crosshairPos)).map((x) => x.toFixed(2)).join(",");
  }

  function canvasPos(ev) {
    const rect = nv.canvas.getBoundingClientRect();
    const dpr = nv.uiData.dpr || window.devicePixelRatio || 1;
    return [(ev.clientX - rect.left) * dpr, (ev.clientY - rect.top) * dpr];
  }
  function mmAtCanvas(ev) {
    const frac = nv.canvasPos2frac(canvasPos(ev));
    if (!frac || frac[0] < 0) return null;
    return nv.frac2mm(frac);
  }

  function resize(height) {
    const h = Math.max(240, height || 560);
    wrap.style.height = h + "px";
    nv.resizeListener();
    post("streamlit:setFrameHeight", { height: document.documentElement.scrollHeight });
  }

  // ------------------------------------------------------------------ loading
  // The CT arrives in stages, coarsest first (args.previews: every 4th, then every 2nd voxel per
  // axis, for a large CT), then at full resolution. Each stage replaces the background in one
  // NiiVue refresh (NiiVue re-renders every layer into 3-D textures on each refresh: without a
  // GPU that is seconds per million voxels, so the code avoids every refresh it can). The next
  // stage's bytes are fetched while the current one is being drawn.
  async function fetchBytes(url) {
    const response = await fetch(url);
    if (!response.ok) throw new Error("HTTP " + response.status);
    return response.arrayBuffer();
  }

  const nth = (k) => k + (k === 2 ? "nd" : k === 3 ? "rd" : "th");
  function stepsText(s) { // s: [x, y, z] steps
    if (s[0] === s[1] && s[1] === s[2]) return "every " + nth(s[0]) + " voxel";
    if (s[0] === s[1]) return "every " + nth(s[0]) + " voxel in-plane, every " + nth(s[2]) + " slice";
    return "every " + nth(s[0]) + " voxel in x, " + nth(s[1]) + " in y, " + nth(s[2]) + " slice";
  }
  const stepsLabel = (s) => (s[0] === s[1] && s[1] === s[2] ? String(s[0]) : s.join("x"));
  function stageText() {
    return isPreview() ? "Preview (" + stepsText(state.steps) +
      "): values are those of the nearest sampled voxel. Full resolution is loading…" : "";
  }
  function showStage() {
    const el = $("stage");
    el.textContent = stageText();
    el.classList.toggle("active", isPreview());
    body.dataset.stage = isPreview() ? "preview" + stepsLabel(state.steps) : "full";
  }

  // The full CT of a large case is built by the server only when the viewer asks for it (after
  // the first view is shown): its URL arrives in a later render's args.
  const fullCt = { key: null, url: null, resolve: null, asked: false };
  function expectCt(args) {
    fullCt.key = args.ct_key;
    fullCt.url = args.ct_url || null;
    fullCt.asked = false;
    return fullCt.url ? fullCt.url : new Promise((resolve) => { fullCt.resolve = resolve; });
  }
  function noteCtUrl(args) {
    if (!args.ct_url || args.ct_key !== fullCt.key || fullCt.url) return;
    fullCt.url = args.ct_url;
    if (fullCt.resolve) fullCt.resolve(fullCt.url);
    fullCt.resolve = null;
    mark("full CT url received");
  }
  const needCt = () => (fullCt.key && !fullCt.url ? fullCt.key : null);
  function askForCt() {
    if (!needCt() || fullCt.asked) return;
    fullCt.asked = true;
    state.seq += 1;
    mark("full CT asked for");
    post("streamlit:setComponentValue", { dataType: "json",
      value: { kind: "load", need_ct: fullCt.key, seq: Date.now() + "-" + state.seq } });
  }

  function setBackground(vol) {
    // Replace the background, keep the overlay (the ROI: NiiVue resamples it onto the new grid)
    // and the crosshair's place in mm; one refresh instead of remove + add + re-window.
    const mm = ct() ? nv.frac2mm(nv.scene.crosshairPos) : null;
    const overlays = nv.volumes.slice(1);
    if (ct()) { vol.cal_min = ct().cal_min; vol.cal_max = ct().cal_max; } // the window as the user left it
    nv.volumes = [vol].concat(overlays);
    nv.back = vol;
    nv.overlays = overlays;
    nv.updateGLVolume();
    if (mm) nv.scene.crosshairPos = nv.mm2frac([mm[0], mm[1], mm[2]]);
    nv.drawScene();
  }

  function painted() {
    return new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
  }

  async function loadCase(args) {
    // resolves once the first stage is shown; the finer stages follow in the background (a
    // render meanwhile, e.g. a new ROI or a centre request, does not wait for them)
    body.dataset.state = "loading";
    body.dataset.full = "";
    const t0 = performance.now();
    const key = args.ct_key;
    state.ctKey = key;
    state.shape = args.ct_shape_xyz || null;
    mark("load starts");
    const stages = (args.previews || []).map((p) => ({ url: p.url, steps: p.step, label: stepsLabel(p.step) }))
      .concat([{ url: expectCt(args), steps: [1, 1, 1], label: "1" }]);
    stages.forEach((s) => { s.name = s.label === "1" ? "ct.nii" : "preview" + s.label + ".nii"; });
    const fetchStage = async (stage) => { stage.url = await stage.url; return fetchBytes(stage.url); };
    let next = fetchStage(stages[0]);
    const stale = () => { if (next) next.catch(() => {}); return state.ctKey !== key; };
    const load = async (i) => {
      const stage = stages[i];
      const buffer = await next;
      mark("stage " + stage.label + " fetched");
      next = i + 1 < stages.length ? fetchStage(stages[i + 1]) : null;
      if (state.ctKey !== key) return stale() && null;
      const p = PRESETS[state.window];
      const win = ct() && i > 0 ? [ct().cal_min, ct().cal_max] : [p.level - p.width / 2, p.level + p.width / 2];
      const vol = await NV.NVImage.loadFromUrl({ url: stage.url, buffer: buffer, name: stage.name, colormap: "gray",
                                                 cal_min: win[0], cal_max: win[1] });
      vol.cal_min = win[0];
      vol.cal_max = win[1];
      mark("stage " + stage.label + " parsed");
      return state.ctKey !== key ? stale() && null : vol;
    };
    const first = await load(0);
    if (!first) return;
    state.steps = stages[0].steps;
    while (nv.volumes.length > 0) nv.volumes.pop();
    state.roiKey = null;
    await syncRoi(args, first); // the ROI (if any) joins in the same refresh
    if (state.ctKey !== key) return;
    showWindow();
    showStage();
    showCrosshair();
    body.dataset.ctKey = key;
    body.dataset.state = "ready";
    await painted(); // let the browser show the first view before the next stage's work
    body.dataset.loadMs = String(Math.round(performance.now() - t0)); // fetch + parse + GPU upload + paint
    mark("stage " + stages[0].label + " shown");
    if (stages.length === 1) { body.dataset.full = "1"; return; }
    askForCt();
    (async () => {
      for (let i = 1; i < stages.length; i++) {
        if (i === stages.length - 1 && needCt()) { fullCt.asked = false; askForCt(); } // the request may have been lost
        const vol = await load(i);
        if (!vol) return;
        state.steps = stages[i].steps;
        setBackground(vol);
        showStage();
        showCrosshair();
        await painted();
        mark("stage " + stages[i].label + " shown");
      }
      body.dataset.full = "1";
    })().catch((err) => { console.error(err); $("stage").textContent = "The full-resolution CT could not be loaded."; });
  }

  async function syncRoi(args, background) {
    // ``background``: a new CT volume to show with the ROI in the same refresh (first view)
    const key = args.roi_url ? args.roi_key : null;
    if (key === state.roiKey && !background) return;
    state.roiKey = key;
    let roiVol = null;
    if (key) {
      roiVol = await NV.NVImage.loadFromUrl({ url: args.roi_url, name: "roi.nii.gz", colormap: "red",
                                              opacity: state.roiOpacity, cal_min: 0.5, cal_max: 1.0 });
      if (state.roiKey !== key) return;
    }
    const back = background || ct();
    if (!back) return;
    nv.volumes = roiVol ? [back, roiVol] : [back];
    nv.back = back;
    nv.overlays = nv.volumes.slice(1);
    applyRoiStyle(false);
    nv.updateGLVolume(); // one refresh for the new ROI (and background)
    body.dataset.roiKey = key || "";
  }

  function centreOn(lps) {
    if (!ct() || !lps) return;
    nv.scene.crosshairPos = nv.mm2frac(lpsToRas(lps));
    nv.drawScene();
    nv.createOnLocationChange();
  }

  function setPick(pick) {
    state.pick = pick || null;
    wrap.classList.toggle("pick", !!state.pick);
    const m = $("mode");
    m.textContent = state.pick ? PICK_TEXT[state.pick] || "" : "";
    m.classList.toggle("active", !!state.pick);
  }

  let chain = Promise.resolve();
  function onRender(args) {
    mark(args.ct_key ? (args.ct_url ? "render with CT" : "render with CT previews") : "render without CT");
    noteCtUrl(args);
    resize(args.height);
    setPick(args.pick);
    chain = chain.then(async () => {
      try {
        if (args.ct_key && args.ct_key !== state.ctKey) await loadCase(args);
        else if (args.ct_key) await syncRoi(args);
        if (args.centre_seq != null && args.centre_seq !== state.centreSeq) {
          state.centreSeq = args.centre_seq;
          centreOn(args.centre_lps);
        }
        resize(args.height);
      } catch (err) {
        body.dataset.state = "error";
        $("cross").textContent = "The CT could not be shown in the viewer.";
        console.error(err);
      }
    });
  }

  // ------------------------------------------------------------------ events
  nv.onLocationChange = () => showCrosshair();

  const canvas = $("gl");
  let down = null;
  canvas.addEventListener("mousedown", (ev) => { down = { x: ev.clientX, y: ev.clientY, button: ev.button, mods: ev.shiftKey || ev.ctrlKey }; });
  canvas.addEventListener("mouseup", (ev) => {
    const d = down;
    down = null;
    if (!d || !state.pick || d.button !== 0 || d.mods) return;
    if (Math.hypot(ev.clientX - d.x, ev.clientY - d.y) > 4) return; // a drag, not a click
    const ras = mmAtCanvas(ev);
    if (!ras || !huAt(ras)) return; // outside the image
    state.seq += 1;
    post("streamlit:setComponentValue", {
      dataType: "json",
      value: { kind: state.pick, lps_mm: rasToLps(ras).map((x) => Math.round(x * 1000) / 1000), seq: Date.now() + "-" + state.seq,
               need_ct: needCt() },
    });
  });
  canvas.addEventListener("mousemove", (ev) => {
    const ras = mmAtCanvas(ev);
    const at = ras && huAt(ras);
    if (!at) { $("cursor").innerHTML = "&nbsp;"; return; }
    const lps = rasToLps(ras);
    $("cursor").textContent = "Cursor x " + fmt(lps[0]) + " · y " + fmt(lps[1]) + " · z " + fmt(lps[2]) + " mm · " + Math.round(at.hu) + " HU" + huNote();
  });
  canvas.addEventListener("mouseleave", () => { $("cursor").innerHTML = "&nbsp;"; });
  // Ctrl+wheel zooms (plain wheel scrolls slices, NiiVue's default); capture phase, before NiiVue.
  canvas.addEventListener("wheel", (ev) => {
    if (!ev.ctrlKey) return;
    ev.preventDefault();
    ev.stopImmediatePropagation();
    zoomBy(ev.deltaY < 0 ? 1.15 : 1 / 1.15);
  }, { capture: true, passive: false });
  canvas.addEventListener("keydown", (ev) => {
    const step = { ArrowUp: 1, PageUp: 1, ArrowDown: -1, PageDown: -1 }[ev.key];
    if (ev.key === "r") { $("roi-show").click(); return; }
    if (!step || !ct()) return;
    ev.preventDefault();
    ev.stopImmediatePropagation();
    // one voxel through the plane shown (axial in the 3-plane view)
    const axis = { multi: 2, axial: 2, coronal: 1, sagittal: 0 }[state.view];
    const d = [0, 0, 0];
    d[axis] = step;
    nv.moveCrosshairInVox(d[0], d[1], d[2]);
  }, { capture: true });

  function zoomBy(factor) {
    const p = nv.scene.pan2Dxyzmm;
    nv.setPan2Dxyzmm([p[0], p[1], p[2], Math.min(20, Math.max(0.5, p[3] * factor))]);
  }

  document.querySelectorAll("[data-view]").forEach((b) => b.addEventListener("click", () => setView(b.dataset.view)));
  document.querySelectorAll("[data-window]").forEach((b) => b.addEventListener("click", () => {
    state.window = b.dataset.window;
    document.querySelectorAll("[data-window]").forEach((o) => o.classList.toggle("on", o === b));
    const p = PRESETS[state.window];
    applyWindow(p.width, p.level);
  }));
  document.querySelectorAll("[data-zoom]").forEach((b) => b.addEventListener("click", () => {
    if (b.dataset.zoom === "reset") nv.setPan2Dxyzmm([0, 0, 0, 1]);
    else zoomBy(b.dataset.zoom === "in" ? 1.25 : 0.8);
  }));
  document.querySelectorAll("[data-style]").forEach((b) => b.addEventListener("click", () => {
    state.roiStyle = b.dataset.style;
    document.querySelectorAll("[data-style]").forEach((o) => o.classList.toggle("on", o === b));
    applyRoiStyle();
  }));
  $("roi-show").addEventListener("change", (ev) => { state.roiShown = ev.target.checked; applyRoiStyle(); });
  $("roi-opacity").addEventListener("input", (ev) => { state.roiOpacity = ev.target.value / 100; applyRoiStyle(); });
  // window/level drags change cal_min/cal_max inside NiiVue: keep the W/L text in step
  canvas.addEventListener("mouseup", () => setTimeout(showWindow, 0));

  window.addEventListener("message", (ev) => {
    // the Python side sends its arguments as one JSON string (see ct_viewer in __init__.py)
    if (ev.data && ev.data.type === "streamlit:render") onRender(JSON.parse((ev.data.args || {}).spec || "{}"));
  });

  // ------------------------------------------------------------------ warm-up
  // Without a GPU the first refresh of a page pays one-time costs (shaders compiled by SwiftShader,
  // textures set up) of a few tenths of a second whatever the volume's size: pay them before the
  // upload, on a 2×2×2 CT (int16) and ROI (uint8), then clear the canvas.
  function tinyNifti(datatype, bitpix, values) {
    const buf = new ArrayBuffer(352 + values.length * bitpix / 8);
    const dv = new DataView(buf);
    dv.setInt32(0, 348, true); // sizeof_hdr
    [3, 2, 2, 2, 1, 1, 1, 1].forEach((v, i) => dv.setInt16(40 + 2 * i, v, true)); // dim
    dv.setInt16(70, datatype, true);
    dv.setInt16(72, bitpix, true);
    [1, 1, 1, 1].forEach((v, i) => dv.setFloat32(76 + 4 * i, v, true)); // pixdim
    dv.setFloat32(108, 352, true); // vox_offset
    dv.setFloat32(112, 1, true); // scl_slope
    dv.setInt16(254, 1, true); // sform_code
    [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]].forEach((row, r) => row.forEach((v, c) => dv.setFloat32(280 + 16 * r + 4 * c, v, true)));
    [0x6E, 0x2B, 0x31].forEach((v, i) => dv.setUint8(344 + i, v)); // "n+1"
    (bitpix === 16 ? new Int16Array(buf, 352) : new Uint8Array(buf, 352)).set(values);
    return buf;
  }
  async function warmUp() {
    try {
      const back = await NV.NVImage.loadFromUrl({ url: "warm.nii", buffer: tinyNifti(4, 16, new Array(8).fill(-3000)),
                                                  name: "warm.nii", colormap: "gray", cal_min: -1350, cal_max: 150 });
      const over = await NV.NVImage.loadFromUrl({ url: "warmroi.nii", buffer: tinyNifti(2, 8, [0, 0, 0, 0, 0, 0, 0, 1]),
                                                  name: "warmroi.nii", colormap: "red", cal_min: 0.5, cal_max: 1.0 });
      if (nv.volumes.length > 0) return; // a CT came first
      nv.volumes = [back, over];
      nv.back = back;
      nv.overlays = [over];
      nv.updateGLVolume();
      await painted();
    } catch (err) {
      console.error(err); // only a warm-up: the CT still loads
    }
    if (state.ctKey !== null) return;
    nv.volumes = [];
    nv.back = null;
    nv.overlays = [];
    nv.drawScene();
    mark("warmed up");
  }

  nv.attachToCanvas(canvas).then(() => {
    setView("multi");
    applyRoiStyle();
    mark("canvas attached");
    chain = chain.then(warmUp);
    post("streamlit:componentReady", { apiVersion: 1 });
  });
})();
