/* framesift report: filters, sorts, pages and draws the gallery, and draws the charts, from the data embedded in the
   page. An item is [image, strategy, source, batch, time, tags, width, height, task, annotation, why]; names are
   indexes into the data's tables (see framesift/report/gallery.py). The filters, the order, the page and whether
   the charts are open live in the address's #fragment, so a view can be bookmarked or opened directly:
   report.html#strategy=uncertain&class=car&sort=confidence-low&confidence=20-60&page=2 (or #view=charts) */
(function () {
  'use strict';
  const data = JSON.parse(document.getElementById('framesift-data').textContent);
  const [IMAGE, STRATEGY, SOURCE, BATCH, TIME, TAGS, WIDTH, HEIGHT, TASK, ANNOTATION, WHY] =
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  const confidencesOf = (item) => item[ANNOTATION] ? (item[ANNOTATION].d || item[ANNOTATION].c).map((e) => e[1]) : [];
  const objectsOf = (item) => item[ANNOTATION] && item[ANNOTATION].d ? item[ANNOTATION].d.length : 0;
  const lowest = (item) => confidencesOf(item).length ? Math.min(...confidencesOf(item)) : Infinity;
  const highest = (item) => confidencesOf(item).length ? Math.max(...confidencesOf(item)) : -Infinity;
  const timeOf = (item) => item[TIME] === null ? Infinity : item[TIME];
  /* The orders of the gallery (a stable sort: ties keep the order of registration). */
  const SORTS = {
    'time': ['time, oldest first', (a, b) => timeOf(a) - timeOf(b)],
    'time-newest': ['time, newest first', (a, b) => timeOf(b) - timeOf(a)],
    'confidence-low': ['lowest confidence first', (a, b) => lowest(a) - lowest(b)],
    'confidence-high': ['highest confidence first', (a, b) => highest(b) - highest(a)],
    'objects': ['most objects first', (a, b) => objectsOf(b) - objectsOf(a)],
  };
  const FILTERS = [
    {key: 'strategy', names: data.strategies, field: STRATEGY},
    {key: 'source', names: data.sources, field: SOURCE},
    {key: 'batch', names: data.batches, field: BATCH},
    {key: 'class', names: data.classes, field: null},
  ];
  let shown = null;  // the #fragment last drawn

  function el(tag, attributes, text) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  const colour = (index) => data.palette[index % data.palette.length];
  const classesOf = (item) => item[ANNOTATION] ? (item[ANNOTATION].d || item[ANNOTATION].c).map((e) => e[0]) : [];
  const url = (path) => data.base + path.split('/').map(encodeURIComponent).join('/');
  const when = (t) => t === null ? 'time unknown' : new Date(t * 1000).toISOString().slice(0, 19).replace('T', ' ') + ' UTC';
  const count = (n, one, many) => n + ' ' + (n === 1 ? one : many || one + 's');
  const label = (entry) => data.classes[entry[0]] + ' ' + entry[1] + '%';

  /* The filters chosen and the page, from the #fragment (a name not in the data chooses nothing). */
  function chosen() {
    const params = new URLSearchParams(location.hash.slice(1));
    const state = {page: Math.max(1, parseInt(params.get('page') || '1', 10) || 1),
                   sort: SORTS[params.get('sort')] ? params.get('sort') : 'time', confidence: null,
                   charts: params.get('view') === 'charts'};
    for (const filter of FILTERS) {
      state[filter.key] = params.has(filter.key) ? filter.names.indexOf(params.get(filter.key)) : -1;
    }
    const range = /^(\d+)-(\d+)$/.exec(params.get('confidence') || '');  // percents, both ends included
    if (range && Number(range[1]) <= Number(range[2])) state.confidence = [Number(range[1]), Number(range[2])];
    return state;
  }

  function go(state) {
    const params = new URLSearchParams();
    for (const filter of FILTERS) if (state[filter.key] >= 0) params.set(filter.key, filter.names[state[filter.key]]);
    if (state.sort !== 'time') params.set('sort', state.sort);
    if (state.confidence) params.set('confidence', state.confidence.join('-'));
    if (state.page > 1) params.set('page', state.page);
    if (state.charts) params.set('view', 'charts');
    location.hash = params.toString();
    render();
  }

  /* The items the filters choose (with a confidence range: those with a detection or class within it), in the
     order chosen. */
  function matching(state) {
    const [low, high] = state.confidence || [0, 100];
    const found = data.items.filter((item) => FILTERS.every((filter) => state[filter.key] < 0 || (filter.field === null
      ? classesOf(item).includes(state[filter.key]) : item[filter.field] === state[filter.key]))
      && (!state.confidence || confidencesOf(item).some((c) => c >= low && c <= high)));
    return found.sort(SORTS[state.sort][1]);
  }

  function buildFilters() {
    const form = document.getElementById('filters');
    for (const filter of FILTERS) {
      const counts = new Array(filter.names.length).fill(0);
      for (const item of data.items) {
        if (filter.field === null) for (const c of new Set(classesOf(item))) counts[c]++;
        else counts[item[filter.field]]++;
      }
      const select = el('select', {name: filter.key});
      select.append(el('option', {value: '-1'}, 'all (' + data.items.length + ')'));
      filter.names.forEach((name, i) => select.append(el('option', {value: String(i)}, name + ' (' + counts[i] + ')')));
      select.addEventListener('change', () => {
        const state = chosen();
        state[filter.key] = Number(select.value);
        state.page = 1;
        go(state);
      });
      const wrap = el('label', {}, filter.key);
      wrap.append(select);
      form.append(wrap);
    }
    const sort = el('select', {name: 'sort'});
    for (const [key, [name]] of Object.entries(SORTS)) sort.append(el('option', {value: key}, name));
    sort.addEventListener('change', () => go({...chosen(), sort: sort.value, page: 1}));
    const sortLabel = el('label', {}, 'sort');
    sortLabel.append(sort);
    const range = el('label', {}, 'confidence %');
    for (const end of ['low', 'high']) {
      const input = el('input', {type: 'number', name: 'confidence-' + end, min: '0', max: '100', step: '1',
                                 placeholder: end === 'low' ? '0' : '100'});
      input.addEventListener('change', () => {
        const [low, high] = ['low', 'high'].map((e) => form.querySelector('input[name=confidence-' + e + ']').value);
        const bounds = [low === '' ? 0 : Number(low), high === '' ? 100 : Number(high)];
        go({...chosen(), confidence: low === '' && high === '' ? null : bounds, page: 1});
      });
      range.append(input);
    }
    form.append(sortLabel, range);
    document.getElementById('show-charts').addEventListener('click', () => {
      go({...chosen(), charts: true});
      document.getElementById('charts-panel').scrollIntoView();
    });
    document.getElementById('charts-panel').addEventListener('toggle', (event) => {
      const state = chosen();
      if (state.charts !== event.target.open) go({...state, charts: event.target.open});
    });
    document.querySelectorAll('.pager button').forEach((button) => button.addEventListener('click', () => {
      const state = chosen();
      state.page += Number(button.dataset.step);
      go(state);
    }));
  }

  /* The boxes, mask outlines and keypoints of an item over its image (framesift/assets/overlay.js). */
  const overlay = (item, withLabels) => framesiftOverlay(item[ANNOTATION], item[WIDTH], item[HEIGHT], data.classes,
                                                         data.palette, withLabels);

  function thumb(item, withLabels) {
    const box = el('div', {class: 'thumb'});
    box.style.aspectRatio = item[WIDTH] + ' / ' + item[HEIGHT];
    const layer = overlay(item, withLabels);
    const decisive = new Set(item[WHY][1]);  // the boxes that made the decision stand out; the others fade
    layer.querySelectorAll('rect').forEach((rect, i) => {
      if (!decisive.size) return;
      if (decisive.has(i)) {
        rect.setAttribute('data-decisive', 'true');
        rect.setAttribute('stroke-width', '4');
      } else {
        rect.setAttribute('stroke-opacity', '0.45');
      }
    });
    box.append(el('img', {src: url(item[IMAGE]), alt: item[IMAGE], loading: 'lazy', decoding: 'async'}), layer);
    const annotation = item[ANNOTATION];
    if (annotation && annotation.c && annotation.c.length) {
      const badge = el('span', {class: 'badge'}, annotation.c.map(label).join(', '));
      badge.style.background = colour(annotation.c[0][0]);
      box.append(badge);
    }
    return box;
  }

  /* What the pre-annotation says, in a few words: "2 car, 1 person", "cat 93%", "no pre-annotation". */
  function summary(item) {
    const annotation = item[ANNOTATION];
    if (!annotation) return 'no pre-annotation';
    if (annotation.c) return annotation.c.length ? annotation.c.map(label).join(', ') : 'no class';
    if (!annotation.d.length) return 'no object';
    const counts = new Map();
    for (const detection of annotation.d) counts.set(detection[0], (counts.get(detection[0]) || 0) + 1);
    return [...counts].map(([cls, n]) => n + ' ' + data.classes[cls]).join(', ');
  }

  function captionLines(item) {
    const tags = item[TAGS].map((t) => data.tags[t]).join(', ');
    return [['classes', summary(item)],
            ['why', item[WHY][0]],
            ['meta', data.sources[item[SOURCE]]],
            ['meta', when(item[TIME])],
            ['meta', 'batch ' + data.batches[item[BATCH]] + (tags ? ' · ' + tags : '')]];
  }

  function figure(item) {
    const node = el('figure', {class: 'item', 'data-image': item[IMAGE]});
    const caption = el('figcaption');
    for (const [cls, text] of captionLines(item)) caption.append(el('div', {class: cls, title: text}, text));
    node.append(thumb(item, false), caption);
    node.addEventListener('click', () => enlarge(item));
    return node;
  }

  function enlarge(item) {
    const box = document.getElementById('lightbox');
    box.replaceChildren();
    const node = el('figure');
    node.style.width = Math.min(innerWidth * 0.92, innerHeight * 0.78 * item[WIDTH] / item[HEIGHT]) + 'px';
    const caption = el('figcaption');
    const detections = (item[ANNOTATION] && item[ANNOTATION].d) || [];
    const lines = [...captionLines(item), ['meta', data.tasks[item[TASK]] + ' · ' + item[IMAGE]]];
    if (detections.length) lines.push(['meta', detections.map(label).join(', ')]);
    for (const [cls, text] of lines) caption.append(el('div', {class: cls}, text));
    node.append(thumb(item, true), caption);
    box.append(node);
    box.hidden = false;
  }

  function render() {
    if (shown === location.hash) return;
    shown = location.hash;
    const state = chosen();
    for (const filter of FILTERS) document.querySelector('#filters select[name=' + filter.key + ']').value = String(state[filter.key]);
    document.querySelector('#filters select[name=sort]').value = state.sort;
    ['low', 'high'].forEach((end, i) => {
      document.querySelector('#filters input[name=confidence-' + end + ']').value =
        state.confidence ? String(state.confidence[i]) : '';
    });
    document.getElementById('charts-panel').open = state.charts;
    const found = matching(state);
    const pages = Math.max(1, Math.ceil(found.length / data.pageSize));
    const page = Math.min(state.page, pages);
    const gallery = document.getElementById('gallery');
    gallery.replaceChildren(...found.slice((page - 1) * data.pageSize, page * data.pageSize).map(figure));
    if (!found.length) gallery.append(el('p', {}, 'No datapoint matches these filters.'));
    document.getElementById('count').textContent = count(found.length, 'datapoint') +
      (found.length === data.items.length ? '' : ' of ' + data.items.length);
    document.querySelectorAll('.pager .page').forEach((span) => { span.textContent = 'page ' + page + ' of ' + pages; });
    document.querySelectorAll('.pager button').forEach((button) => {
      const to = page + Number(button.dataset.step);
      button.disabled = to < 1 || to > pages;
    });
  }

  function drawCharts() {
    const host = document.getElementById('charts');
    if (window.Chart) Object.assign(Chart.defaults, {animation: false, maintainAspectRatio: false});
    for (const chart of data.charts) {
      const section = el('section', {class: 'chart', 'data-chart': chart.key});
      section.append(el('h3', {}, chart.title));
      host.append(section);
      if (chart.config && window.Chart) {
        const box = el('div', {class: 'canvas'});
        const canvas = el('canvas', {role: 'img', 'aria-label': chart.title});
        box.append(canvas);
        section.append(box);
        new Chart(canvas, chart.config);
        canvas.dataset.drawn = 'true';
      }
      if (chart.note) section.append(el('p', {}, chart.note));
      if (chart.rows.length) {
        const table = el('table');
        chart.rows.forEach((row, i) => {
          const tr = el('tr');
          for (const cell of row) tr.append(el(i ? 'td' : 'th', {}, cell));
          table.append(tr);
        });
        section.append(table);
      }
    }
  }

  function describeDataset() {
    document.getElementById('title').textContent = data.title;
    document.title = 'framesift report: ' + data.title;
    let [first, last] = [Infinity, -Infinity];  // not Math.min(...times): 100 000 arguments overflow the stack
    for (const item of data.items) {
      if (item[TIME] !== null) [first, last] = [Math.min(first, item[TIME]), Math.max(last, item[TIME])];
    }
    const span = first <= last ? ', captured ' + when(first) + ' to ' + when(last) : '';
    document.getElementById('about').textContent = count(data.items.length, 'datapoint') + ' in ' +
      count(data.batches.length, 'batch', 'batches') + ' from ' + count(data.sources.length, 'source') +
      ', selected by ' + count(data.strategies.length, 'strategy', 'strategies') + span + ' · report written ' +
      data.generated.replace('T', ' ').replace('Z', ' UTC');
    if (data.skipped) {
      const details = document.getElementById('skipped');
      details.querySelector('summary').textContent = data.skipped + ' records could not be shown' +
        (data.skipped > data.skippedExamples.length ? ' (the first ' + data.skippedExamples.length + ' below)' : '');
      for (const [name, why] of data.skippedExamples) details.querySelector('ul').append(el('li', {}, name + ': ' + why));
      details.hidden = false;
    }
  }

  describeDataset();
  drawCharts();
  buildFilters();
  render();
  addEventListener('hashchange', render);
  const lightbox = document.getElementById('lightbox');
  lightbox.addEventListener('click', () => { lightbox.hidden = true; });
  addEventListener('keydown', (event) => { if (event.key === 'Escape') lightbox.hidden = true; });
})();
