/* skmixed model explorer: renders the embedded model data and predicts in the page.
 * No dependency: the plots are SVG drawn here. The data is the JSON in
 * <script id="skmixed-data">, written by skmixed._explore. */
(function () {
  "use strict";
  const D = JSON.parse(document.getElementById("skmixed-data").textContent);
  const P = D.predictor;
  const SVGNS = "http://www.w3.org/2000/svg";
  const Z_LEVELS = { "0.8": 1.2815515655446004, "0.9": 1.6448536269514722,
    "0.95": 1.959963984540054, "0.99": 2.5758293035489004 };
  // The response scale: eta -> mean, as skmixed._family.Link.inverse (eta clipped to +-700).
  const ETA_LIMIT = 700;
  function clip(eta) { return Math.min(Math.max(eta, -ETA_LIMIT), ETA_LIMIT); }
  function normalCdf(x) {  // Marsaglia's series: absolute error about 1e-16
    if (Number.isNaN(x)) return NaN;
    if (x < -8.5) return 0;
    if (x > 8.5) return 1;
    let s = x, t = 0, b = x;
    const q = x * x;
    for (let i = 1; s !== t; ) { t = s; i += 2; b *= q / i; s = t + b; }
    return 0.5 + s * Math.exp(-0.5 * q - 0.91893853320467274178);
  }
  const LINKS = {
    identity: function (eta) { return eta; },
    logit: function (eta) { return 1 / (1 + Math.exp(-clip(eta))); },
    probit: function (eta) { return normalCdf(clip(eta)); },
    cloglog: function (eta) { return -Math.expm1(-Math.exp(clip(eta))); },
    log: function (eta) { return Math.exp(clip(eta)); },
  };
  const inverseLink = LINKS[P.link];
  const GLMM = Boolean(P.marginal);
  // A generalised model's prediction averaged over random effects it does not know
  // (variance v: unseen levels), as _MixedGLM._mean: the lognormal mean, probit's
  // closed form, else the Gauss-Hermite rule embedded by skmixed.
  function marginalMean(eta, v) {
    if (!(v > 0)) return inverseLink(eta);
    if (P.link === "log") return Math.exp(clip(eta + v / 2));
    if (P.link === "probit") return inverseLink(eta / Math.sqrt(1 + v));
    const sd = Math.sqrt(v), nodes = P.marginal.nodes, weights = P.marginal.weights;
    let mean = 0;
    for (let i = 0; i < nodes.length; i++) mean += weights[i] * inverseLink(eta + sd * nodes[i]);
    return mean;
  }

  // ------------------------------------------------------------------ numbers
  function fmt(v, digits) {
    if (v === null || v === undefined || Number.isNaN(v)) return "NA";
    if (typeof v !== "number") return String(v);
    const d = digits === undefined ? 4 : digits;
    const a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(Math.max(1, d - 1));
    return String(Number(v.toPrecision(d)));
  }
  function fmtP(p) {
    if (p === null || p === undefined) return "NA";
    return p < 2e-16 ? "<2e-16" : p < 1e-4 ? p.toExponential(1) : p.toFixed(4);
  }
  function dot(a, b) { let s = 0; for (let i = 0; i < a.length; i++) s += a[i] * b[i]; return s; }
  function quad(v, M) {
    let s = 0;
    for (let i = 0; i < v.length; i++) for (let j = 0; j < v.length; j++) s += v[i] * M[i][j] * v[j];
    return s;
  }

  // ------------------------------------------------- the model matrix (formula)
  function broadcast(a, b, f) {
    if (Array.isArray(a) || Array.isArray(b)) {
      const n = Array.isArray(a) ? a.length : b.length;
      const out = [];
      for (let i = 0; i < n; i++) out.push(f(Array.isArray(a) ? a[i] : a, Array.isArray(b) ? b[i] : b));
      return out;
    }
    return f(a, b);
  }
  function num(v) { return typeof v === "boolean" ? (v ? 1 : 0) : v; }
  const MATH = { log: Math.log, log2: Math.log2, log10: Math.log10, log1p: Math.log1p,
    exp: Math.exp, expm1: Math.expm1, sqrt: Math.sqrt, abs: Math.abs, sin: Math.sin,
    cos: Math.cos, tan: Math.tan };
  const BINARY = {
    "+": function (a, b) { return num(a) + num(b); },
    "-": function (a, b) { return num(a) - num(b); },
    "*": function (a, b) { return num(a) * num(b); },
    "/": function (a, b) { return num(a) / num(b); },
    "**": function (a, b) { return Math.pow(num(a), num(b)); },
    "&": function (a, b) { return Boolean(a) && Boolean(b); },
    "|": function (a, b) { return Boolean(a) || Boolean(b); },
    ">": function (a, b) { return a > b; }, "<": function (a, b) { return a < b; },
    ">=": function (a, b) { return a >= b; }, "<=": function (a, b) { return a <= b; },
    "==": function (a, b) { return a === b; }, "!=": function (a, b) { return a !== b; },
  };
  function poly(x, p) {  // R's predict.poly, as skmixed._formula._poly_apply
    const out = [];
    if (p.raw) { for (let k = 1; k <= p.degree; k++) out.push(Math.pow(x, k)); return out; }
    const Z = [1, x - p.alpha[0]];
    for (let i = 1; i < p.degree; i++) {
      Z.push((x - p.alpha[i]) * Z[i] - (p.norm2[i + 1] / p.norm2[i]) * Z[i - 1]);
    }
    for (let k = 1; k <= p.degree; k++) out.push(Z[k] / Math.sqrt(p.norm2[k + 1]));
    return out;
  }
  function evaluate(node, env) {
    switch (node.op) {
      case "constant": return node.value;
      case "column": return env[node.name];
      case "neg": return broadcast(evaluate(node.a, env), 0, function (a) { return -num(a); });
      case "math": {
        const f = MATH[node.fn];
        const a = evaluate(node.a, env);
        const base = node.base ? evaluate(node.base, env) : null;
        return broadcast(a, 0, function (v) {
          const out = f(num(v));
          return base === null ? out : out / Math.log(base);
        });
      }
      case "poly": return poly(num(evaluate(node.a, env)), node.params);
      case "scale": return broadcast(evaluate(node.a, env), 0, function (v) {
        return (num(v) - node.params.center) / node.params.scale;
      });
      default: {
        const f = BINARY[node.op];
        return broadcast(evaluate(node.a, env), evaluate(node.b, env), f);
      }
    }
  }
  function variableValue(v, env, state) {
    if (v.kind === "table") {
      const key = v.columns.map(function (c) { return state.inputs[c]; }).join(",");
      return v.table[key];
    }
    const value = evaluate(v.expr, env);
    return Array.isArray(value) ? value.map(num) : [num(value)];
  }
  function variableColumns(v, value, code) {
    if (!v.factor) return Array.isArray(value) ? value : [value];
    if (code === 2) {
      const row = new Array(v.n_levels).fill(0); row[value] = 1; return row;
    }
    return v.contrasts[value];
  }
  function partRow(part, env, state) {
    const values = part.variables.map(function (v) { return variableValue(v, env, state); });
    const row = part.intercept ? [1] : [];
    part.terms.forEach(function (term) {
      let block = [1];
      term.forEach(function (pair) {
        const cols = variableColumns(part.variables[pair[0]], values[pair[0]], pair[1]);
        const next = [];
        cols.forEach(function (c) { block.forEach(function (b) { next.push(c * b); }); });
        block = next;
      });
      row.push.apply(row, block);
    });
    return part.keep.map(function (j) { return row[j]; });
  }
  function inputEnv(state) {
    const env = {};
    P.inputs.forEach(function (inp) {
      env[inp.name] = inp.kind === "numeric" ? state.inputs[inp.name] : inp.values[state.inputs[inp.name]];
    });
    return env;
  }
  // The fixed-effect features x (no intercept) and the random-effect columns z.
  function designRow(state) {
    if (P.kind === "array") {
      const x = P.features.map(function (f) { return state.inputs[f]; });
      return { x: x, z: x };
    }
    const env = inputEnv(state);
    const x = partRow(P.recipe.fixed, env, state);
    let z = [];
    P.recipe.random.forEach(function (part) { z = z.concat(partRow(part, env, state)); });
    return { x: x, z: z };
  }
  function termValues(f, z) {
    const out = f.intercept ? [1] : [];
    f.slope_columns.forEach(function (c) { out.push(z[c]); });
    return out;
  }

  // ----------------------------------------------------------------- predict
  // eta = intercept + x coef + sum over factors of z_f b_f[level]  (model.predict);
  // its variance: x1' vcov x1 + z_f' C z_f (C: a seen level's conditional covariance,
  // a new level's Sigma_f) + sigma^2 for a new observation. A generalised model fitted
  // with an offset adds the offset set in the what-if (P.offset; state.offset).
  function predict(state) {
    const row = designRow(state);
    const population = P.intercept + dot(row.x, P.coef) + (P.offset ? state.offset || 0 : 0);
    let eta = population;
    const x1 = (P.fit_intercept ? [1] : []).concat(row.x);
    const xk = P.kept.map(function (j) { return x1[j]; });
    const fixedVar = quad(xk, P.vcov);
    let randomVar = 0, unknownVar = 0;
    const parts = [];
    D.factors.forEach(function (f, k) {
      const t = termValues(f, row.z);
      const level = state.levels[f.name];
      let effect = 0;
      if (level >= 0) {
        const b = f.effects[level];
        const cols = (f.intercept ? [null] : []).concat(f.slope_columns);
        cols.forEach(function (c, i) { effect += c === null ? b[i] : b[i] * row.z[c]; });
        cols.forEach(function (c, i) { eta += c === null ? b[i] : b[i] * row.z[c]; });
        randomVar += quad(t, P.factors[k].cond_cov[level]);
      } else {
        randomVar += quad(t, f.cov);
        unknownVar += quad(t, f.cov);
      }
      parts.push({ factor: f.name, effect: effect, sd: Math.sqrt(quad(t, f.cov)), terms: t });
    });
    const residualVar = P.sigma === null ? 0 : P.sigma * P.sigma;
    const fit = GLMM ? marginalMean(eta, unknownVar) : inverseLink(eta);
    return { eta: eta, fit: fit, conditional: inverseLink(eta), unknownVar: unknownVar, population: inverseLink(population),
      fixedVar: fixedVar, randomVar: randomVar, residualVar: residualVar, parts: parts, row: row };
  }
  function interval(p, z, withResidual) {
    const sd = Math.sqrt(p.fixedVar + p.randomVar + (withResidual ? p.residualVar : 0));
    return [inverseLink(p.eta - z * sd), inverseLink(p.eta + z * sd), sd];
  }

  // ---------------------------------------------------------------- DOM bits
  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(function (kv) {
      if (kv[1] === null || kv[1] === undefined) return;
      if (kv[0] === "text") node.textContent = kv[1]; else node.setAttribute(kv[0], kv[1]);
    });
    (children || []).forEach(function (c) { if (c) node.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return node;
  }
  function table(headers, rows, options) {
    const t = el("table", { class: "grid" });
    const head = el("tr");
    headers.forEach(function (h, j) {
      const th = el("th", { text: h, class: options && options.sortable ? "sortable" : null });
      if (options && options.sortable) th.addEventListener("click", function () { sortTable(t, j); });
      head.appendChild(th);
    });
    t.appendChild(el("thead", {}, [head]));
    const body = el("tbody");
    rows.forEach(function (r) {
      const tr = el("tr");
      r.forEach(function (cell) {
        const td = el("td", { text: typeof cell === "object" && cell !== null ? cell.text : cell });
        if (typeof cell === "object" && cell !== null) td.dataset.sort = cell.sort;
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    t.appendChild(body);
    return t;
  }
  function sortTable(t, j) {
    const body = t.tBodies[0];
    const rows = Array.from(body.rows);
    const dir = t.dataset.sortCol === String(j) && t.dataset.sortDir === "asc" ? -1 : 1;
    rows.sort(function (a, b) {
      const x = a.cells[j].dataset.sort !== undefined ? Number(a.cells[j].dataset.sort) : a.cells[j].textContent;
      const y = b.cells[j].dataset.sort !== undefined ? Number(b.cells[j].dataset.sort) : b.cells[j].textContent;
      if (typeof x === "string") return x.localeCompare(y, undefined, { numeric: true }) * dir;
      return (x < y ? -1 : x > y ? 1 : 0) * dir;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    t.dataset.sortCol = String(j); t.dataset.sortDir = dir === 1 ? "asc" : "desc";
  }
  function numCell(v, digits) { return { text: fmt(v, digits), sort: v === null ? -Infinity : v }; }
  function select(options, value, attrs) {
    const s = el("select", attrs);
    options.forEach(function (o) { s.appendChild(el("option", { value: o[0], text: o[1] })); });
    if (value !== undefined) s.value = String(value);
    return s;
  }

  // ------------------------------------------------------------------- plots
  function svg(tag, attrs, parent) {
    const node = document.createElementNS(SVGNS, tag);
    Object.entries(attrs || {}).forEach(function (kv) {
      if (kv[0] === "text") node.textContent = kv[1]; else node.setAttribute(kv[0], kv[1]);
    });
    if (parent) parent.appendChild(node);
    return node;
  }
  function niceTicks(lo, hi, n) {
    if (!(hi > lo)) { hi = lo + 1; lo = lo - 1; }
    const step0 = (hi - lo) / (n || 5);
    const mag = Math.pow(10, Math.floor(Math.log10(step0)));
    const r = step0 / mag;
    const step = (r < 1.5 ? 1 : r < 3 ? 2 : r < 7 ? 5 : 10) * mag;
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
    return out;
  }
  function extent(values, pad) {
    const finite = values.filter(function (v) { return v !== null && Number.isFinite(v); });
    let lo = Math.min.apply(null, finite), hi = Math.max.apply(null, finite);
    if (!finite.length) { lo = 0; hi = 1; }
    if (hi === lo) { lo -= 1; hi += 1; }
    const p = (hi - lo) * (pad === undefined ? 0.05 : pad);
    return [lo - p, hi + p];
  }
  let clipCount = 0;
  // A frame with axes; returns scales and the plotting group (clipped to the axes).
  function frame(o) {
    const m = { l: o.left || 56, r: 14, t: o.title ? 26 : 10, b: 40 };
    const W = o.width || 420, H = o.height || 300;
    const root = svg("svg", { class: "plot", width: W, height: H, viewBox: "0 0 " + W + " " + H });
    const X = function (v) { return m.l + (v - o.x[0]) / (o.x[1] - o.x[0]) * (W - m.l - m.r); };
    const Y = function (v) { return H - m.b - (v - o.y[0]) / (o.y[1] - o.y[0]) * (H - m.t - m.b); };
    if (o.title) svg("text", { x: m.l, y: 16, class: "title", text: o.title }, root);
    const axis = svg("g", { class: "axis" }, root);
    if (!o.noYTicks) niceTicks(o.y[0], o.y[1], 5).forEach(function (v) {
      svg("line", { x1: m.l, x2: W - m.r, y1: Y(v), y2: Y(v), class: "gridline" }, axis);
      svg("text", { x: m.l - 5, y: Y(v) + 3.5, "text-anchor": "end", text: fmt(v, 3) }, axis);
    });
    if (o.xCategories) {
      o.xCategories.forEach(function (c, i) {
        svg("text", { x: X(i), y: H - m.b + 14, "text-anchor": "middle", text: c }, axis);
      });
    } else {
      niceTicks(o.x[0], o.x[1], 6).forEach(function (v) {
        svg("line", { x1: X(v), x2: X(v), y1: H - m.b, y2: H - m.b + 4 }, axis);
        svg("text", { x: X(v), y: H - m.b + 15, "text-anchor": "middle", text: fmt(v, 3) }, axis);
      });
    }
    svg("line", { x1: m.l, x2: W - m.r, y1: H - m.b, y2: H - m.b }, axis);
    svg("line", { x1: m.l, x2: m.l, y1: m.t, y2: H - m.b }, axis);
    if (o.xlabel) svg("text", { x: (m.l + W - m.r) / 2, y: H - 6, "text-anchor": "middle", text: o.xlabel }, root);
    if (o.ylabel) svg("text", { x: 12, y: (m.t + H - m.b) / 2, "text-anchor": "middle",
      transform: "rotate(-90 12 " + (m.t + H - m.b) / 2 + ")", text: o.ylabel }, root);
    const clip = "skmixed-clip-" + (++clipCount);
    const cp = svg("clipPath", { id: clip }, svg("defs", {}, root));
    svg("rect", { x: m.l - 6, y: m.t - 6, width: W - m.l - m.r + 12, height: H - m.t - m.b + 12 }, cp);
    const g = svg("g", { "clip-path": "url(#" + clip + ")" }, root);
    return { root: root, g: g, X: X, Y: Y, m: m, W: W, H: H };
  }
  function path(points) {
    return points.map(function (p, i) { return (i ? "L" : "M") + p[0].toFixed(2) + "," + p[1].toFixed(2); }).join("");
  }
  function points(f, xs, ys, title) {
    const r = xs.length > 500 ? 2 : 3;
    xs.forEach(function (x, i) {
      if (x === null || ys[i] === null) return;
      const c = svg("circle", { cx: f.X(x), cy: f.Y(ys[i]), r: r, class: "pt" }, f.g);
      if (title) svg("title", { text: title(i) }, c);
    });
  }
  function hline(f, y, x0, x1, style) {
    svg("line", { x1: f.X(x0), x2: f.X(x1), y1: f.Y(y), y2: f.Y(y), stroke: style || "#9aa5b1", "stroke-dasharray": "4 3" }, f.g);
  }

  // ---------------------------------------------------------------- sections
  const sections = {};
  function section(name, title, note) {
    const s = el("section", { "data-section": name, id: name });
    s.appendChild(el("h2", { text: title }));
    if (note) s.appendChild(el("p", { class: "note", text: note }));
    sections[name] = s;
    return s;
  }

  function modelSection() {
    const M = D.model;
    const s = section("model", "The model");
    const cards = el("div", { class: "cards" });
    const card = function (k, v) { cards.appendChild(el("div", { class: "card" }, [el("div", { class: "k", text: k }), el("div", { class: "v", text: v })])); };
    if (GLMM) {  // glmer's criteria
      card("family (link)", M.family + " (" + M.link + ")");
      card("method", M.method);
      card("AIC", fmt(M.aic, 6)); card("BIC", fmt(M.bic, 6));
      card("log-likelihood", fmt(M.loglik, 6));
      card("deviance", fmt(M.deviance, 6));
      card("residual df", String(M.df_resid));
    } else {
      card("method", M.method);
      card(M.criterion_name, fmt(M.criterion, 6));
      card("log-likelihood", fmt(M.loglik, 6));
      card("AIC", fmt(M.aic, 6)); card("BIC", fmt(M.bic, 6));
      card("residual SD", fmt(M.sigma, 4));
    }
    card("observations", String(M.n_obs));
    Object.entries(M.n_groups).forEach(function (kv) { card("levels of " + kv[0], String(kv[1])); });
    s.appendChild(el("p", {}, [el("strong", { text: "Formula: " }), el("code", { text: M.formula })]));
    s.appendChild(cards);
    const status = el("p", {});
    status.appendChild(el("span", { class: "badge " + (M.converged ? "ok" : "warn"), text: M.converged ? "converged" : "not converged" }));
    status.appendChild(el("span", { class: "badge " + (M.singular ? "warn" : "ok"), text: M.singular ? "singular fit" : "not singular" }));
    status.appendChild(document.createTextNode(" " + M.n_iter + " optimiser iterations"));
    s.appendChild(status);
    if (M.singular) s.appendChild(el("p", { class: "note", text: "The fit is on the boundary (lme4's isSingular): a variance is (near) zero or a correlation (near) +-1; consider a simpler random-effects structure." }));
    if (M.messages.length) s.appendChild(el("ul", { class: "messages" }, M.messages.map(function (m) { return el("li", { text: m }); })));
    s.appendChild(el("h3", { text: "summary()" }));
    s.appendChild(el("pre", { class: "summary", text: M.summary }));
  }

  function fixedSection() {
    const F = D.fixed;
    const pct = Math.round(F.level * 100) + "%";
    const s = section("fixed-effects", "Fixed effects", GLMM
      ? "Estimates on the " + F.scale + " scale with Wald z-tests (glmer's) and " + pct + " Wald intervals (model.confint())" + (F.ratio ? "; tick the box to read them exponentiated, as " + F.ratio + "s." : ".")
      : "Estimates with lmerTest's Satterthwaite degrees of freedom and p-values, and " + pct + " Wald intervals (model.confint()).");
    const holder = el("div");
    let ratio = false;
    if (GLMM && F.ratio) {
      const box = el("input", { type: "checkbox", "data-role": "exponentiate" });
      box.addEventListener("change", function () { ratio = box.checked; draw(); });
      s.appendChild(el("label", { class: "controls" }, [box, " show exp(estimate): " + F.ratio + "s"]));
    }
    s.appendChild(holder);
    function draw() {
      holder.innerHTML = "";
      const tr = ratio ? function (v) { return v === null ? null : Math.exp(v); } : function (v) { return v; };
      const est = F.estimate.map(tr), lower = F.lower.map(tr), upper = F.upper.map(tr);
      const stat = GLMM ? F.z_value : F.t_value;
      const rows = F.names.map(function (n, i) {
        const row = [n, numCell(est[i]), numCell(F.std_error[i])];
        if (!GLMM) row.push(numCell(F.df[i]));
        return row.concat([numCell(stat[i], 3), { text: fmtP(F.p_value[i]), sort: F.p_value[i] === null ? 1 : F.p_value[i] }, numCell(lower[i]), numCell(upper[i])]);
      });
      const headers = GLMM
        ? ["term", ratio ? F.ratio : "estimate (" + F.scale + ")", "std. error", "z value", "Pr(>|z|)"]
        : ["term", "estimate", "std. error", "df", "t value", "Pr(>|t|)"];
      holder.appendChild(table(headers.concat(["lower " + pct, "upper " + pct]), rows, { sortable: true }));
      const ref = ratio ? 1 : 0;
      const lo = extent(lower.concat(upper, [ref]), 0.08);
      const f = frame({ width: 560, height: 40 + 26 * F.names.length + 30, x: lo, y: [F.names.length - 0.5, -0.5], left: 110, noYTicks: true, title: "Estimates and " + pct + " intervals", xlabel: ratio ? F.ratio : GLMM ? "estimate (" + F.scale + ")" : "estimate" });
      svg("line", { x1: f.X(ref), x2: f.X(ref), y1: f.m.t, y2: f.H - f.m.b, stroke: "#9aa5b1", "stroke-dasharray": "4 3" }, f.g);
      F.names.forEach(function (n, i) {
        svg("text", { x: f.m.l - 6, y: f.Y(i) + 4, "text-anchor": "end", text: n }, f.root);
        if (lower[i] !== null) svg("line", { x1: f.X(lower[i]), x2: f.X(upper[i]), y1: f.Y(i), y2: f.Y(i), stroke: "#1f6fb2", "stroke-width": 2 }, f.g);
        const c = svg("circle", { cx: f.X(est[i]), cy: f.Y(i), r: 4, fill: "#1f6fb2" }, f.g);
        svg("title", { text: n + ": " + fmt(est[i]) + " [" + fmt(lower[i]) + ", " + fmt(upper[i]) + "]" }, c);
      });
      holder.appendChild(f.root);
    }
    draw();
  }

  function varianceSection() {
    const V = D.variance;
    const s = section("variance-components", "Variance components", "Each grouping factor's random-effect variances, standard deviations and correlations (lme4's VarCorr)" + (V.sigma === null ? ", on the scale of the linear predictor (" + D.fixed.scale + "); the " + D.model.family + " family has no residual variance." : ", and the residual."));
    const rows = [];
    V.blocks.forEach(function (b) {
      b.terms.forEach(function (t, i) {
        const corr = b.corr ? b.corr[i].slice(0, i).map(function (c) { return fmt(c, 3); }).join("  ") : "";
        rows.push([i === 0 ? b.group : "", t, numCell(b.variance[i]), numCell(b.sd[i]), corr]);
      });
    });
    if (V.sigma !== null) rows.push(["Residual", "", numCell(V.residual_variance), numCell(V.sigma), ""]);
    s.appendChild(table(["group", "term", "variance", "std. dev.", "correlations"], rows));
    const sds = [];
    V.blocks.forEach(function (b) { b.terms.forEach(function (t, i) { sds.push([b.group + ": " + t, b.sd[i]]); }); });
    if (V.sigma !== null) sds.push(["Residual", V.sigma]);
    const f = frame({ width: 560, height: 40 + 26 * sds.length + 30, x: [0, extent(sds.map(function (d) { return d[1]; }))[1]], y: [sds.length - 0.5, -0.5], left: 150, noYTicks: true, title: "Standard deviations", xlabel: "SD" });
    sds.forEach(function (d, i) {
      svg("text", { x: f.m.l - 6, y: f.Y(i) + 4, "text-anchor": "end", text: d[0] }, f.root);
      svg("rect", { x: f.X(0), y: f.Y(i) - 8, width: Math.max(0, f.X(d[1]) - f.X(0)), height: 16, fill: "#1f6fb2", "fill-opacity": 0.7 }, f.g);
    });
    s.appendChild(f.root);
  }

  function factorPicker(onChange) {
    const wrap = el("div", { class: "controls" });
    const fsel = select(D.factors.map(function (f, i) { return [i, f.name]; }), 0);
    const tsel = el("select");
    const fill = function () {
      tsel.innerHTML = "";
      D.factors[fsel.value].terms.forEach(function (t, i) { tsel.appendChild(el("option", { value: i, text: t })); });
    };
    fill();
    fsel.addEventListener("change", function () { fill(); onChange(); });
    tsel.addEventListener("change", onChange);
    wrap.appendChild(el("label", { text: "grouping factor" })); wrap.appendChild(fsel);
    wrap.appendChild(el("label", { text: "term" })); wrap.appendChild(tsel);
    return { node: wrap, factor: function () { return D.factors[fsel.value]; }, term: function () { return Number(tsel.value); } };
  }

  function randomSection() {
    const s = section("random-effects", "Random effects", "Each level's predicted random effects (BLUPs, lme4's ranef), their conditional SDs and the rows per level. Click a column to sort; type to search; click a level to use it in the what-if predictions. The caterpillar plot shows the chosen term with 95% conditional intervals; matches of the search are highlighted, and a point clicked is the what-if's level too.");
    if (!D.factors.length) { s.appendChild(el("p", { text: "The model has no random effects." })); return; }
    const holder = el("div");
    const search = el("input", { type: "search", placeholder: "search levels", "data-role": "level-search" });
    const picker = factorPicker(draw);
    picker.node.appendChild(search);
    s.appendChild(picker.node); s.appendChild(holder);
    search.addEventListener("input", highlight);
    function draw() {
      holder.innerHTML = "";
      const f = picker.factor(), t = picker.term();
      const headers = ["level"].concat(f.terms.map(function (x) { return x; }), f.terms.map(function (x) { return "SD " + x; }), ["rows"]);
      const rows = f.levels.map(function (lev, j) {
        return [lev].concat(f.effects[j].map(function (v) { return numCell(v); }), f.cond_sd[j].map(function (v) { return numCell(v); }), [numCell(f.n_rows[j], 6)]);
      });
      const grid = table(headers, rows, { sortable: true });
      Array.from(grid.tBodies[0].rows).forEach(function (tr, j) {
        tr.cells[0].title = "use " + f.levels[j] + " in the what-if predictions";
        tr.cells[0].style.cursor = "pointer";
        tr.cells[0].addEventListener("click", function () { useLevel(f.name, j); });
      });
      const box = el("div", { class: "scroll" }, [grid]);
      const order = f.levels.map(function (_, j) { return j; }).sort(function (a, b) { return f.effects[a][t] - f.effects[b][t]; });
      const lo = [], hi = [];
      order.forEach(function (j) { lo.push(f.effects[j][t] - 1.96 * f.cond_sd[j][t]); hi.push(f.effects[j][t] + 1.96 * f.cond_sd[j][t]); });
      const n = order.length;
      const p = frame({ width: 460, height: Math.min(60 + 14 * n, 4000), x: extent(lo.concat(hi, [0])), y: [-0.5, n - 0.5], left: 90, noYTicks: true, title: "Caterpillar plot: " + f.terms[t] + " | " + f.name, xlabel: "random effect" });
      svg("line", { x1: p.X(0), x2: p.X(0), y1: p.m.t, y2: p.H - p.m.b, stroke: "#9aa5b1", "stroke-dasharray": "4 3" }, p.g);
      order.forEach(function (j, i) {
        const y = p.Y(i);
        if (n <= 60) svg("text", { x: p.m.l - 6, y: y + 3.5, "text-anchor": "end", text: f.levels[j] }, p.root);
        svg("line", { x1: p.X(lo[i]), x2: p.X(hi[i]), y1: y, y2: y, stroke: "#9aa5b1" }, p.g);
        const c = svg("circle", { cx: p.X(f.effects[j][t]), cy: y, r: 3.5, fill: "#1f6fb2", "data-level": f.levels[j] }, p.g);
        c.style.cursor = "pointer";
        c.addEventListener("click", function () { useLevel(f.name, j); });
        svg("title", { text: f.levels[j] + ": " + fmt(f.effects[j][t]) + " (SD " + fmt(f.cond_sd[j][t]) + ", " + f.n_rows[j] + " rows)" }, c);
      });
      if (f.n_levels > f.levels.length) holder.appendChild(el("p", { class: "note", text: "The first " + f.levels.length + " of " + f.n_levels + " levels are shown." }));
      holder.appendChild(el("div", { class: "row" }, [box, p.root]));
      highlight();
    }
    function highlight() {
      const q = search.value.trim().toLowerCase();
      holder.querySelectorAll("tbody tr").forEach(function (tr) {
        const hit = q && tr.cells[0].textContent.toLowerCase().indexOf(q) >= 0;
        tr.classList.toggle("hit", Boolean(hit));
        tr.style.display = !q || hit ? "" : "none";
      });
      holder.querySelectorAll("circle[data-level]").forEach(function (c) {
        c.classList.toggle("hit", Boolean(q && c.getAttribute("data-level").toLowerCase().indexOf(q) >= 0));
      });
    }
    draw();
  }

  function qqPlot(q) {
    const title = q.uniform ? "Uniform QQ (KS test p = " + fmt(q.ks_pvalue, 3) + ")" : "QQ: " + q.name;
    const f = frame({ width: 340, height: 280, x: q.uniform ? [0, 1] : extent(q.theoretical), y: q.uniform ? [0, 1] : extent(q.sample), title: title, xlabel: q.uniform ? "uniform quantiles" : "normal quantiles", ylabel: "sample quantiles" });
    const a = q.line[0], b = q.line[1], xs = extent(q.theoretical, 0);
    svg("path", { d: path([[f.X(xs[0]), f.Y(a + b * xs[0])], [f.X(xs[1]), f.Y(a + b * xs[1])]]), stroke: "#d9822b", fill: "none" }, f.g);
    points(f, q.theoretical, q.sample);
    return f.root;
  }
  function diagnosticsSection() {
    const G = D.diagnostics;
    if (G.kind === "quantile") return quantileDiagnostics(G);
    const s = section("diagnostics", "Diagnostics", "Pearson residuals against fitted values (with a loess smooth) and normal QQ plots of the residuals and of each random-effect term (the plotting module's displays)." + (G.n > G.fitted.length ? " An even subsample of " + G.fitted.length + " of the " + G.n + " rows is drawn." : ""));
    const row = el("div", { class: "row" });
    const f = frame({ width: 420, height: 300, x: extent(G.fitted), y: extent(G.residuals), title: "Residuals vs fitted", xlabel: "fitted values", ylabel: "Pearson residuals" });
    hline(f, 0, extent(G.fitted)[0], extent(G.fitted)[1]);
    points(f, G.fitted, G.residuals);
    if (G.smooth) svg("path", { d: path(G.smooth[0].map(function (x, i) { return [f.X(x), f.Y(G.smooth[1][i])]; })), stroke: "#d9822b", "stroke-width": 2, fill: "none" }, f.g);
    row.appendChild(f.root);
    G.qq.forEach(function (q) { row.appendChild(qqPlot(q)); });
    s.appendChild(row);
  }

  // A generalised model's diagnostics: randomized quantile residuals (uniform under
  // the model, whatever the family), as DHARMa's plotResiduals and plotQQunif.
  function quantileDiagnostics(G) {
    const s = section("diagnostics", "Diagnostics", "Randomized quantile residuals (skmixed.inference.quantile_residuals, conditional on the random effects): uniform on (0, 1) under the model. Against the fitted values, their quartiles in bins (orange) should follow the dashed lines at 0.25, 0.5 and 0.75; in the uniform QQ plot the points should follow the diagonal (an S shape: overdispersion). Normal QQ plots of each random-effect term follow." + (G.n > G.fitted.length ? " An even subsample of " + G.fitted.length + " of the " + G.n + " rows is drawn." : ""));
    const row = el("div", { class: "row" });
    const xr = extent(G.fitted);
    const f = frame({ width: 420, height: 300, x: xr, y: [0, 1], title: "Quantile residuals vs fitted", xlabel: "fitted " + P.response, ylabel: "quantile residuals" });
    [0.25, 0.5, 0.75].forEach(function (q) { hline(f, q, xr[0], xr[1]); });
    points(f, G.fitted, G.residuals);
    G.bins.quartiles.forEach(function (line) {
      svg("path", { d: path(G.bins.centers.map(function (x, i) { return [f.X(x), f.Y(line[i])]; })), stroke: "#d9822b", "stroke-width": 2, fill: "none" }, f.g);
    });
    row.appendChild(f.root);
    G.qq.forEach(function (q) { row.appendChild(qqPlot(q)); });
    s.appendChild(row);
  }

  function shrinkageSection() {
    const s = section("shrinkage", "Shrinkage", "Each level's own least-squares estimate (no pooling, open circle) and its mixed-model estimate (fixed effect + BLUP, partial pooling, filled), joined by an arrow; the dashed line is the population value. Levels with little data move the most.");
    if (!D.factors.length) { s.appendChild(el("p", { text: "The model has no random effects." })); return; }
    const holder = el("div");
    const picker = factorPicker(draw);
    s.appendChild(picker.node); s.appendChild(holder);
    function draw() {
      holder.innerHTML = "";
      const f = picker.factor(), t = picker.term();
      if (!f.no_pooling) { holder.appendChild(el("p", { text: "No-pooling estimates are not available for this factor." })); return; }
      const pop = f.population[t];
      const mixed = f.effects.map(function (b) { return pop + b[t]; });
      const own = f.no_pooling.map(function (r) { return r[t]; });
      const order = f.levels.map(function (_, j) { return j; }).sort(function (a, b) { return (own[a] === null) - (own[b] === null) || own[a] - own[b]; });
      const n = order.length;
      const p = frame({ width: 520, height: Math.min(60 + 14 * n, 4000), x: extent(own.concat(mixed, [pop])), y: [-0.5, n - 0.5], left: 90, noYTicks: true, title: "Shrinkage of " + f.terms[t] + " | " + f.name, xlabel: f.terms[t] });
      svg("line", { x1: p.X(pop), x2: p.X(pop), y1: p.m.t, y2: p.H - p.m.b, stroke: "#616e7c", "stroke-dasharray": "4 3" }, p.g);
      const arrow = "skmixed-arrow-" + (++clipCount);
      const marker = svg("marker", { id: arrow, viewBox: "0 0 10 10", refX: 16, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, svg("defs", {}, p.root));
      svg("path", { d: "M0,0 L10,5 L0,10 z", fill: "#9aa5b1" }, marker);
      order.forEach(function (j, i) {
        const y = p.Y(i);
        if (n <= 60) svg("text", { x: p.m.l - 6, y: y + 3.5, "text-anchor": "end", text: f.levels[j] }, p.root);
        if (own[j] !== null) {
          svg("line", { x1: p.X(own[j]), x2: p.X(mixed[j]), y1: y, y2: y, stroke: "#9aa5b1",
            "marker-end": Math.abs(p.X(own[j]) - p.X(mixed[j])) > 12 ? "url(#" + arrow + ")" : "none" }, p.g);
          svg("circle", { cx: p.X(own[j]), cy: y, r: 3.5, fill: "#fff", stroke: "#d9822b" }, p.g);
        }
        const c = svg("circle", { cx: p.X(mixed[j]), cy: y, r: 3.5, fill: "#1f6fb2" }, p.g);
        svg("title", { text: f.levels[j] + ": no pooling " + fmt(own[j]) + ", mixed " + fmt(mixed[j]) + " (" + f.n_rows[j] + " rows)" }, c);
      });
      holder.appendChild(p.root);
    }
    draw();
  }

  // ----------------------------------------------------- effects and what-if
  const state = { inputs: {}, levels: {}, level: "0.95", offset: P.offset ? P.offset.value : 0 };
  P.inputs.forEach(function (inp) { state.inputs[inp.name] = inp.value; });
  D.factors.forEach(function (f) { state.levels[f.name] = -1; });
  const listeners = [];
  const levelSelectors = {};
  function useLevel(factor, j) {  // a level clicked in the random-effects table
    state.levels[factor] = j;
    if (levelSelectors[factor]) levelSelectors[factor].value = String(j);
    changed();
  }
  function changed() { listeners.forEach(function (f) { f(); }); }

  function effectsSection() {
    const s = section("effects", "Effect plots", GLMM
      ? "The prediction of a typical group (random effects at zero, glmer's re.form = NA) on the response scale (" + P.response + ") along each input, the other inputs held at the values set in the what-if section, with a pointwise 95% confidence band from the fixed effects' covariance (computed on the " + D.fixed.scale + " scale and transformed); the points are the data."
      : "The population prediction (no random effects) along each input, the other inputs held at the values set in the what-if section, with a pointwise 95% confidence band from the fixed effects' covariance; the points are the data.");
    const row = el("div", { class: "row" });
    s.appendChild(row);
    function draw() {
      row.innerHTML = "";
      P.inputs.forEach(function (inp) { row.appendChild(effectPlot(inp)); });
    }
    listeners.push(draw);
    draw();
  }
  function populationAt(inputs) {  // [eta, its SD] without random effects
    const st = { inputs: inputs, levels: {}, offset: state.offset };
    D.factors.forEach(function (f) { st.levels[f.name] = -1; });
    const p = predict(st);
    return [p.eta, Math.sqrt(p.fixedVar)];
  }
  function effectPlot(inp) {
    const z = 1.959963984540054;
    const grid = inp.kind === "numeric"
      ? Array.from({ length: 41 }, function (_, i) { return inp.min + (inp.max - inp.min) * i / 40; })
      : inp.levels.map(function (_, i) { return i; });
    const curve = grid.map(function (v) {
      const inputs = Object.assign({}, state.inputs); inputs[inp.name] = v;
      const r = populationAt(inputs);
      return [v, inverseLink(r[0]), inverseLink(r[0] - z * r[1]), inverseLink(r[0] + z * r[1])];
    });
    const xs = D.data.x[inp.name] || [], ys = D.data.y || [];
    const yr = extent(curve.map(function (c) { return c[2]; }).concat(curve.map(function (c) { return c[3]; }), ys));
    const xr = inp.kind === "numeric" ? extent(grid, 0.03) : [-0.6, inp.levels.length - 0.4];
    const f = frame({ width: 380, height: 280, x: xr, y: yr, title: inp.name, xlabel: inp.name, ylabel: P.response, xCategories: inp.kind === "numeric" ? null : inp.levels });
    if (ys.length) {
      const jitter = inp.kind === "numeric" ? 0 : 0.15;
      points(f, xs.map(function (x, i) { return x === null ? null : x + jitter * Math.sin(i * 12.9898); }), ys);
    }
    if (inp.kind === "numeric") {
      const band = curve.map(function (c) { return [f.X(c[0]), f.Y(c[3])]; }).concat(curve.slice().reverse().map(function (c) { return [f.X(c[0]), f.Y(c[2])]; }));
      svg("path", { d: path(band) + "Z", fill: "#1f6fb2", "fill-opacity": 0.18, stroke: "none" }, f.g);
      svg("path", { d: path(curve.map(function (c) { return [f.X(c[0]), f.Y(c[1])]; })), stroke: "#1f6fb2", "stroke-width": 2, fill: "none" }, f.g);
      const cur = state.inputs[inp.name];
      svg("line", { x1: f.X(cur), x2: f.X(cur), y1: f.m.t, y2: f.H - f.m.b, stroke: "#d9822b", "stroke-dasharray": "3 3" }, f.g);
    } else {
      curve.forEach(function (c) {
        svg("line", { x1: f.X(c[0]), x2: f.X(c[0]), y1: f.Y(c[2]), y2: f.Y(c[3]), stroke: "#1f6fb2", "stroke-width": 2 }, f.g);
        svg("circle", { cx: f.X(c[0]), cy: f.Y(c[1]), r: 5, fill: "#1f6fb2" }, f.g);
      });
    }
    return f.root;
  }

  function whatIfSection() {
    const s = section("what-if", "What-if predictions", GLMM
      ? "Set the inputs and a level of each grouping factor (or a new level): the page computes model." + (P.family === "binomial" ? "predict_proba's probability" : "predict's expected value") + " on the response scale (" + P.response + "): conditional on a seen level's random effects, averaged over a new level's (the marginal prediction). The interval is eta +- z SD on the " + D.fixed.scale + " scale, transformed: its variance adds the fixed effects' (vcov) and the level's random effects' (its conditional covariance; Sigma for a new level, so it is where a new group's mean lies). The table below it is merTools' substantive impact: the prediction across the quantiles of each factor's random effects."
      : "Set the inputs and a level of each grouping factor (or a new level): the page computes model.predict's value and a normal prediction interval, whose variance adds the fixed effects' (vcov), the level's random effects' (its conditional covariance; Sigma for a new level) and the residual variance. The table below it is merTools' substantive impact: the prediction across the quantiles of each factor's random effects.");
    const grid = el("div", { class: "whatif" });
    const left = el("div"), right = el("div");
    grid.appendChild(left); grid.appendChild(right); s.appendChild(grid);
    const inputsBox = el("fieldset", {}, [el("legend", { text: "inputs" })]);
    P.inputs.forEach(function (inp) {
      const field = el("div", { class: "field" });
      field.appendChild(el("label", { text: inp.name }));
      if (inp.kind === "numeric") {
        const box = el("input", { type: "number", step: "any", "data-feature": inp.name, value: String(inp.value),
          "aria-label": inp.name });
        const slider = el("input", { type: "range", min: inp.min, max: inp.max, step: (inp.max - inp.min) / 200 || 1, value: inp.value });
        box.addEventListener("input", function () {
          const v = Number(box.value);
          if (box.value.trim() === "" || !Number.isFinite(v)) return;
          state.inputs[inp.name] = v; slider.value = v; changed();
        });
        slider.addEventListener("input", function () { box.value = slider.value; state.inputs[inp.name] = Number(slider.value); changed(); });
        field.appendChild(box); field.appendChild(slider);
        field.appendChild(el("span", { class: "range", text: "data: " + fmt(inp.min) + " to " + fmt(inp.max) + ", mean " + fmt(inp.value) }));
      } else {
        const sel = select(inp.levels.map(function (l, i) { return [i, l + " (" + inp.counts[i] + " rows)"]; }), inp.value,
          { "data-feature": inp.name, "aria-label": inp.name });
        sel.addEventListener("change", function () { state.inputs[inp.name] = Number(sel.value); changed(); });
        field.appendChild(sel);
      }
      inputsBox.appendChild(field);
    });
    if (P.offset) {  // the linear predictor's known term (e.g. log exposure)
      const box = el("input", { type: "number", step: "any", "data-role": "offset", value: String(P.offset.value), "aria-label": "offset" });
      box.addEventListener("input", function () {
        const v = Number(box.value);
        if (box.value.trim() === "" || !Number.isFinite(v)) return;
        state.offset = v; changed();
      });
      inputsBox.appendChild(el("div", { class: "field" }, [el("label", { text: "offset" }), box,
        el("span", { class: "range", text: "the fit's offsets: " + fmt(P.offset.min) + " to " + fmt(P.offset.max) + ", mean " + fmt(P.offset.value) }) ]));
    }
    left.appendChild(inputsBox);
    if (D.factors.length) {
      const levelsBox = el("fieldset", {}, [el("legend", { text: "levels" })]);
      D.factors.forEach(function (f) {
        const options = [[-1, "(new level)"]].concat(f.levels.map(function (l, j) { return [j, l]; }));
        const sel = select(options, -1, { "data-factor": f.name, "aria-label": f.name });
        sel.addEventListener("change", function () { state.levels[f.name] = Number(sel.value); changed(); });
        levelSelectors[f.name] = sel;
        levelsBox.appendChild(el("div", { class: "field" }, [el("label", { text: f.name }), sel]));
      });
      left.appendChild(levelsBox);
    }
    const levelSel = select([["0.8", "80%"], ["0.9", "90%"], ["0.95", "95%"], ["0.99", "99%"]], "0.95", { "data-role": "interval-level" });
    levelSel.addEventListener("change", function () { state.level = levelSel.value; changed(); });
    left.appendChild(el("div", { class: "field" }, [el("label", { text: "interval" }), levelSel]));

    const out = el("div", { class: "prediction" });
    right.appendChild(out);
    const impact = el("div");
    right.appendChild(impact);
    function update() {
      if (GLMM) return updateGeneralized();
      const p = predict(state);
      const z = Z_LEVELS[state.level];
      const pi = interval(p, z, true), ci = interval(p, z, false);
      out.innerHTML = "";
      out.appendChild(el("div", { class: "tip", text: "predicted " + P.response }));
      out.appendChild(el("div", { class: "big", "data-role": "prediction", "data-value": String(p.fit), text: fmt(p.fit, 6) }));
      const pct = Math.round(Number(state.level) * 100) + "%";
      out.appendChild(el("div", { class: "interval", "data-role": "interval", "data-lower": String(pi[0]), "data-upper": String(pi[1]),
        text: pct + " prediction interval: [" + fmt(pi[0], 5) + ", " + fmt(pi[1], 5) + "]" }));
      out.appendChild(el("div", { class: "tip", text: pct + " interval of the mean (no residual): [" + fmt(ci[0], 5) + ", " + fmt(ci[1], 5) + "]; population prediction (no random effects): " + fmt(p.population, 6) }));
      const rows = [["fixed effects", numCell(Math.sqrt(p.fixedVar))]];
      p.parts.forEach(function (part) {
        const lev = state.levels[part.factor];
        rows.push(["random effects: " + part.factor + (lev >= 0 ? " (level " + D.factors.find(function (f) { return f.name === part.factor; }).levels[lev] + ", effect " + fmt(part.effect, 4) + ")" : " (new level)"), ""]);
      });
      rows.push(["  all random effects", numCell(Math.sqrt(p.randomVar))]);
      rows.push(["residual", numCell(Math.sqrt(p.residualVar))]);
      rows.push(["total", numCell(pi[2])]);
      out.appendChild(table(["source of uncertainty", "SD"], rows));
      drawImpact(impact, p);
    }
    function updateGeneralized() {
      const p = predict(state);
      const z = Z_LEVELS[state.level];
      const ci = interval(p, z, false);
      const pct = Math.round(Number(state.level) * 100) + "%";
      const isNew = p.unknownVar > 0;
      out.innerHTML = "";
      out.appendChild(el("div", { class: "tip", text: "predicted " + P.response + (isNew ? " (marginal over the new level's random effects)" : "") }));
      out.appendChild(el("div", { class: "big", "data-role": "prediction", "data-value": String(p.fit), text: fmt(p.fit, 6) }));
      out.appendChild(el("div", { class: "interval", "data-role": "interval", "data-lower": String(ci[0]), "data-upper": String(ci[1]),
        text: pct + " interval of " + (isNew ? "a new group's mean" : "this group's mean") + ": [" + fmt(ci[0], 5) + ", " + fmt(ci[1], 5) + "]" }));
      out.appendChild(el("div", { class: "tip", "data-role": "conditional", "data-value": String(p.conditional),
        text: "linear predictor " + fmt(p.eta, 6) + (isNew ? "; with the new level's random effects at zero: " + fmt(p.conditional, 6) : "") + "; a typical group (all random effects at zero): " + fmt(p.population, 6) }));
      const rows = [["fixed effects", numCell(Math.sqrt(p.fixedVar))]];
      p.parts.forEach(function (part) {
        const lev = state.levels[part.factor];
        rows.push(["random effects: " + part.factor + (lev >= 0 ? " (level " + D.factors.find(function (f) { return f.name === part.factor; }).levels[lev] + ", effect " + fmt(part.effect, 4) + ")" : " (new level)"), ""]);
      });
      rows.push(["  all random effects", numCell(Math.sqrt(p.randomVar))]);
      rows.push(["total", numCell(ci[2])]);
      out.appendChild(table(["source of uncertainty", "SD (" + D.fixed.scale + ")"], rows));
      drawImpact(impact, p);
    }
    listeners.push(update);
    update();
  }

  // merTools' REimpact: the prediction with the levels of one factor binned by
  // the quantiles of their random effects at these inputs.
  function drawImpact(node, p) {
    node.innerHTML = "";
    if (!D.factors.length) return;
    node.appendChild(el("h3", { text: "Substantive impact of the random effects" }));
    D.factors.forEach(function (f, k) {
      const part = p.parts[k];
      const base = p.eta - (state.levels[f.name] >= 0 ? part.effect : 0);
      const contrib = f.effects.map(function (b) { return dot(b, part.terms); });
      const sorted = contrib.slice().sort(function (a, b) { return a - b; });
      const nb = Math.min(5, sorted.length);
      const rows = [];
      for (let i = 0; i < nb; i++) {
        const lo = Math.floor(i * sorted.length / nb), hi = Math.floor((i + 1) * sorted.length / nb);
        const bin = sorted.slice(lo, hi);
        const mean = bin.reduce(function (a, b) { return a + b; }, 0) / bin.length;
        rows.push([Math.round(100 * i / nb) + "-" + Math.round(100 * (i + 1) / nb) + "%", String(bin.length),
          numCell(inverseLink(base + mean)), numCell(inverseLink(base + bin[0])) , numCell(inverseLink(base + bin[bin.length - 1]))]);
      }
      node.appendChild(el("p", { class: "note", text: f.name + ": levels binned by their random-effect contribution at these inputs (" + f.levels.length + " levels); a new level's contribution is N(0, " + fmt(part.sd, 4) + "\u00b2), whose 10% and 90% quantiles give " + fmt(inverseLink(base - 1.2815515655446004 * part.sd), 5) + " and " + fmt(inverseLink(base + 1.2815515655446004 * part.sd), 5) + "." }));
      node.appendChild(table(["quantile bin of " + f.name, "levels", "mean prediction", "lowest", "highest"], rows));
      node.appendChild(impactStrip(f, contrib, base, part.sd));
    });
  }

  // Every level's prediction at these inputs, over a new level's 10-90% band.
  function impactStrip(f, contrib, base, sd) {
    const preds = contrib.map(function (c) { return inverseLink(base + c); });
    const band = [inverseLink(base - 1.2815515655446004 * sd), inverseLink(base + 1.2815515655446004 * sd)];
    const p = frame({ width: 560, height: 110, x: extent(preds.concat(band)), y: [0, 1], noYTicks: true,
      title: "Prediction with each level of " + f.name + " (band: a new level's 10-90%)", xlabel: P.response });
    svg("rect", { x: p.X(band[0]), y: p.Y(0.85), width: Math.max(1, p.X(band[1]) - p.X(band[0])), height: p.Y(0.15) - p.Y(0.85),
      fill: "#d9822b", "fill-opacity": 0.15 }, p.g);
    const chosen = state.levels[f.name];
    preds.forEach(function (v, j) {
      const c = svg("circle", { cx: p.X(v), cy: p.Y(0.5), r: j === chosen ? 6 : 3.5, class: j === chosen ? "hit" : "pt" }, p.g);
      svg("title", { text: f.levels[j] + ": " + fmt(v, 5) }, c);
    });
    return p.root;
  }

  // ---------------------------------------------------------------- layout
  function build() {
    document.title = D.title;
    const header = el("header");
    header.appendChild(el("h1", { text: "Model explorer" }));
    header.appendChild(el("div", { class: "formula", text: D.model.formula }));
    const nav = el("nav");
    header.appendChild(nav);
    const main = el("main");
    modelSection(); fixedSection(); varianceSection(); randomSection();
    diagnosticsSection(); if (!GLMM) shrinkageSection(); effectsSection(); whatIfSection();
    const titles = { "model": "Model", "fixed-effects": "Fixed effects", "variance-components": "Variance components",
      "random-effects": "Random effects", "diagnostics": "Diagnostics", "shrinkage": "Shrinkage", "effects": "Effects", "what-if": "What-if" };
    Object.keys(sections).forEach(function (name) {
      const b = el("button", { type: "button", "data-tab": name, text: titles[name] });
      b.addEventListener("click", function () { show(name); });
      nav.appendChild(b);
      main.appendChild(sections[name]);
    });
    document.body.appendChild(header);
    document.body.appendChild(main);
    function show(name) {
      Object.keys(sections).forEach(function (n) { sections[n].classList.toggle("active", n === name); });
      nav.querySelectorAll("button").forEach(function (b) { b.classList.toggle("active", b.dataset.tab === name); });
      if (history.replaceState) history.replaceState(null, "", "#" + name);
    }
    const start = location.hash.slice(1);
    show(sections[start] ? start : "model");
    window.skmixedExplorer = { data: D, predict: predict, state: state, show: show };
  }
  build();
})();
