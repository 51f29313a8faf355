// The QA dashboard's plots, drawn from the JSON the page carries in
// <script type="application/json" id="dashboard-data">. The page itself holds no script
// (its Content-Security-Policy allows only scripts the service serves).
"use strict";
(function () {
  var holder = document.getElementById("dashboard-data");
  if (!holder) {
    return;
  }
  var data = JSON.parse(holder.textContent);
  Object.keys(data.figures).forEach(function (name) {
    var div = document.getElementById("plot-" + name);
    var figure = data.figures[name];
    if (div) {
      Plotly.newPlot(div, figure.data, figure.layout, { responsive: true, displaylogo: false });
    }
  });
})();
