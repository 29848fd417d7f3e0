/* framesift live page: asks /live/state every refresh_ms while the page is visible, and shows per source its
   latest frame with the model's predictions drawn (framesift/assets/overlay.js, the report's drawing), its fps,
   frame age, drops and reconnects; per collector its counters and the datapoints it registered last. A frame's
   picture is fetched by its id and swapped in together with its boxes once it has loaded, so the boxes shown are
   always those of the frame shown (its id is the frame box's data-frame-id). */
(function () {
  'use strict';
  const cards = new Map();  // source name -> {node, frame, numbers, meta, shown, loading}
  const collectorCards = new Map();  // collector name -> {node, counters, strategies, latest, shown}
  let lastAnswer = null;

  function el(tag, attributes, text) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  const seconds = (s) => s === null || s === undefined ? '–' : s < 1 ? Math.round(s * 1000) + ' ms' : s.toFixed(1) + ' s';
  const clock = (date) => date.toISOString().slice(11, 19) + ' UTC';
  function duration(s) {
    const [h, m] = [Math.floor(s / 3600), Math.floor(s / 60) % 60];
    return h ? h + ' h ' + m + ' min' : m ? m + ' min ' + Math.floor(s % 60) + ' s' : Math.floor(s) + ' s';
  }

  function numbers(node, pairs) {
    node.replaceChildren(...pairs.map(([label, value, cls]) => {
      const span = el('span', cls ? {class: cls} : {}, label + ' ');
      span.append(el('b', {}, String(value)));
      return span;
    }));
  }

  /* What the model saw, in a few words: "2 red square, 1 blue square", "cat 93%", "nothing". */
  function summary(annotation, classes) {
    if (!annotation) return 'no predictions (stub model)';
    if (annotation.c) return annotation.c.map(([c, p]) => classes[c] + ' ' + p + '%').join(', ') || 'no class';
    const counts = new Map();
    for (const detection of annotation.d) counts.set(detection[0], (counts.get(detection[0]) || 0) + 1);
    return [...counts].map(([c, n]) => n + ' ' + classes[c]).join(', ') || 'nothing detected';
  }

  function sourceCard(source) {
    let card = cards.get(source.name);
    if (!card) {
      const node = el('article', {class: 'source', 'data-source': source.name});
      card = {node, frame: el('div', {class: 'frame'}), numbers: el('div', {class: 'numbers'}),
              meta: el('div', {class: 'meta'}, 'no frame inferred yet'), shown: null, loading: false};
      node.append(el('h2', {}, source.name), el('div', {class: 'url'}, source.url), card.frame, card.numbers, card.meta);
      document.getElementById('sources').append(node);
      cards.set(source.name, card);
    }
    return card;
  }

  function showSource(source, state) {
    const card = sourceCard(source);
    const age = source.frame_age_s || {};
    const dropped = Object.entries(source.dropped_by_reason).map(([why, n]) => why + ' ' + n).join(', ');
    const skipped = Object.entries(source.skipped_by_reason).map(([why, n]) => why + ' ' + n).join(', ');
    numbers(card.numbers, [
      [source.connected ? 'connected' : 'not connected', '', source.connected ? '' : 'down'],
      ['fps', source.fps.toFixed(1)],
      ['frame age p50', seconds(age.p50)], ['p99', seconds(age.p99)],
      ['inferred', source.frames_inferred],
      ['dropped', source.frames_dropped + (dropped ? ' (' + dropped + ')' : '')],
      ['skipped', source.frames_skipped + (skipped ? ' (' + skipped + ')' : '')],
      ['reconnects', source.reconnects, source.reconnects ? 'down' : ''],
    ]);
    const frame = source.frame;
    if (!frame || frame.id === card.shown || card.loading) return;
    card.loading = true;
    const image = new Image();
    image.alt = source.name + ' frame ' + frame.id;
    image.src = frame.url;
    image.decode().then(() => {
      card.frame.style.aspectRatio = frame.width + ' / ' + frame.height;
      card.frame.replaceChildren(image, framesiftOverlay(frame.annotation, frame.width, frame.height, state.classes,
                                                         state.palette, true));
      if (frame.annotation && frame.annotation.c && frame.annotation.c.length) {  // a classification: its classes
        card.frame.append(el('span', {class: 'badge'}, summary(frame.annotation, state.classes)));
      }
      card.frame.dataset.frameId = frame.id;
      card.shown = frame.id;
      card.meta.textContent = 'frame ' + frame.id + ' · ' + summary(frame.annotation, state.classes) + ' · ' +
        seconds(frame.age_s) + ' old · captured ' + frame.captured_at.replace('T', ' ').replace('Z', ' UTC');
    }, () => {}).finally(() => { card.loading = false; });  // a picture gone already: the next state names another
  }

  function showCollector(collector, state) {
    let card = collectorCards.get(collector.name);
    if (!card) {
      const node = el('article', {class: 'collector', 'data-collector': collector.name});
      card = {node, counters: el('table', {class: 'counters'}), strategies: el('table', {class: 'strategies'}),
              limits: el('div', {class: 'limits'}), latest: el('div', {class: 'latest'}), shown: ''};
      node.append(el('h2', {}, 'collector ' + collector.name), card.counters, card.strategies, card.limits,
                  el('div', {class: 'meta'}, 'collected last, newest first'), card.latest);
      document.getElementById('collectors').append(node);
      collectorCards.set(collector.name, card);
    }
    const row = (cells, header) => {
      const tr = el('tr');
      cells.forEach((cell, i) => tr.append(el(header ? 'th' : 'td', i && !header ? {class: 'n'} : {}, String(cell))));
      return tr;
    };
    const [header, values] = [el('tr'), el('tr')];
    for (const [name, value] of Object.entries(collector.counters)) {
      header.append(el('th', {}, name.replace('_', ' ')));
      values.append(el('td', {class: 'n', 'data-counter': name}, String(value)));
    }
    card.counters.replaceChildren(header, values);
    card.strategies.replaceChildren(row(['strategy', 'sampled', 'registered'], true),
      ...Object.entries(collector.strategies).map(([name, c]) => row([name, c.sampled, c.registered])));
    card.limits.replaceChildren(...collector.limits.map((limit) => {  // each limit's fill, and when it refills
      const full = limit.used >= limit.max;
      const node = el('div', {class: 'limit' + (full ? ' full' : ''), 'data-strategy': limit.strategy,
                              'data-window': String(limit.window_s)});
      const bar = el('div', {class: 'bar', role: 'meter', 'aria-valuemin': '0', 'aria-valuemax': String(limit.max),
                             'aria-valuenow': String(limit.used), 'aria-label': limit.text});
      const spent = el('span');
      spent.style.width = Math.min(100, 100 * limit.used / limit.max) + '%';
      bar.append(spent);
      node.append(bar, el('span', {class: 'text'}, limit.text));
      return node;
    }));
    const ids = collector.latest.map((d) => d.id).join(' ');
    if (ids === card.shown) return;
    card.shown = ids;
    card.latest.replaceChildren(...collector.latest.map((d) => {
      const figure = el('figure', {'data-datapoint': d.id});
      const thumb = el('div', {class: 'thumb'});
      thumb.style.aspectRatio = d.width + ' / ' + d.height;
      thumb.append(el('img', {src: d.url, alt: d.strategy + ' ' + d.id, decoding: 'async'}),
                   framesiftOverlay(d.annotation, d.width, d.height, state.classes, state.palette, false));
      const when = d.captured_at.slice(11, 19);
      const caption = el('figcaption', {title: 'batch ' + d.batch + ', frame ' + d.frame_id});
      caption.append(el('div', {class: 'why', title: d.why}, d.why), el('div', {class: 'meta'}, d.source + ' · ' + when));
      figure.append(thumb, caption);
      return figure;
    }));
  }

  function show(state) {
    const inferred = state.sources.reduce((n, s) => n + s.frames_inferred, 0);
    const fps = state.sources.reduce((n, s) => n + s.fps, 0);
    const node = document.getElementById('summary');
    node.className = '';
    node.textContent = state.sources.length + (state.sources.length === 1 ? ' source' : ' sources') + ' · ' +
      fps.toFixed(1) + ' fps in all · ' + inferred + ' frames inferred · running for ' + duration(state.elapsed_s) +
      ' · updated ' + clock(new Date());
    for (const source of state.sources) showSource(source, state);
    for (const collector of state.collectors) showCollector(collector, state);
  }

  async function poll() {
    let wait = 1000;
    if (!document.hidden) {  // a hidden page asks nothing: it costs framesift nothing
      try {
        const answer = await fetch('/live/state', {cache: 'no-store'});
        if (!answer.ok) throw new Error(answer.status);
        const state = await answer.json();
        lastAnswer = new Date();
        wait = state.refresh_ms;
        show(state);
      } catch (error) {
        const node = document.getElementById('summary');
        node.className = 'stale';
        node.textContent = 'no answer from framesift' + (lastAnswer ? ' since ' + clock(lastAnswer) : '') +
          ': has it stopped?';
        wait = 2000;
      }
    }
    setTimeout(poll, wait);
  }

  poll();
})();
