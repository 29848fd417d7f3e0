/* framesift: a compact pre-annotation drawn over its image, as an SVG layer — one drawing for every page (the
   report's gallery, the live page). The annotation is framesift.annotations' format: {d: [[class, confidence, x1,
   y1, x2, y2, polygon, keypoints], ...]} or {c: [[class, confidence], ...]}, classes as indexes into `classes`,
   coordinates in the image's pixels (`width` x `height`), confidences in percent. Classifications are not drawn
   here (a page shows them as a badge or a caption). Each box is a <rect> with its class and confidence in data-
   attributes, so what was drawn can be read back from the page. */
(function () {
  'use strict';
  const SVG = 'http://www.w3.org/2000/svg';  // the SVG namespace's name, not an address that is fetched
  const KEYPOINT_MIN = 50;  // keypoints drawn from this confidence (%), as Ultralytics draws them

  function svg(tag, attributes) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
    return node;
  }

  /* The layer over an image of width x height: boxes, mask outlines and keypoints (and labels when asked). */
  window.framesiftOverlay = function (annotation, width, height, classes, palette, withLabels) {
    const colour = (index) => palette[index % palette.length];
    const layer = svg('svg', {viewBox: '0 0 ' + width + ' ' + height, preserveAspectRatio: 'none'});
    const radius = Math.max(width, height) / 90;
    for (const [cls, confidence, x1, y1, x2, y2, polygon, keypoints] of (annotation && annotation.d) || []) {
      const stroke = {stroke: colour(cls), 'stroke-width': 2, 'vector-effect': 'non-scaling-stroke'};
      if (polygon) {
        const points = [];
        for (let k = 0; k + 1 < polygon.length; k += 2) points.push(polygon[k] + ',' + polygon[k + 1]);
        layer.append(svg('polygon', {points: points.join(' '), fill: colour(cls), 'fill-opacity': 0.35, ...stroke}));
      }
      layer.append(svg('rect', {x: x1, y: y1, width: x2 - x1, height: y2 - y1, fill: 'none', ...stroke,
                                'data-class': classes[cls], 'data-confidence': confidence}));
      for (let k = 0; keypoints && k + 2 < keypoints.length; k += 3) {
        if (keypoints[k + 2] >= KEYPOINT_MIN) {
          layer.append(svg('circle', {cx: keypoints[k], cy: keypoints[k + 1], r: radius, fill: colour(cls),
                                      stroke: '#fff', 'stroke-width': 1, 'vector-effect': 'non-scaling-stroke'}));
        }
      }
      if (withLabels) {
        const text = svg('text', {x: x1 + 2, y: Math.max(y1 - 4, 12), fill: '#fff', stroke: colour(cls),
                                  'stroke-width': 3, 'paint-order': 'stroke', 'font-size': Math.max(12, height / 40)});
        text.textContent = classes[cls] + ' ' + confidence + '%';
        layer.append(text);
      }
    }
    return layer;
  };
})();
