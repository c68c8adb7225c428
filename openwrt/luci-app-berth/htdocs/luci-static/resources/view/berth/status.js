'use strict';
'require view';
'require rpc';
'require poll';

// Engine status: the rpcd backend's "status" (GET /version and /info of the berth daemon).
var callStatus = rpc.declare({ object: 'berth', method: 'status', expect: { '': {} } });

function row(label, value) {
	return E('tr', { 'class': 'tr' }, [
		E('td', { 'class': 'td left', 'width': '33%' }, [ label ]),
		E('td', { 'class': 'td left' }, [ (value === undefined || value === null || value === '') ? '-' : String(value) ])
	]);
}

function render(st) {
	if (!st || st.error)
		return E('div', { 'class': 'alert-message warning' }, [ _('The berth daemon is not reachable: %s').format(st && st.error || _('no answer')) ]);
	var v = st.version || {}, i = st.info || {};
	return E('table', { 'class': 'table' }, [
		row(_('Version'), v.Version),
		row(_('API version'), v.ApiVersion),
		row(_('Node.js'), v.GoVersion),
		row(_('Kernel'), v.KernelVersion),
		row(_('Architecture'), (v.Os || '') + '/' + (v.Arch || '')),
		row(_('Containers'), _('%d (%d running, %d paused, %d stopped)').format(i.Containers || 0, i.ContainersRunning || 0, i.ContainersPaused || 0, i.ContainersStopped || 0)),
		row(_('Images'), i.Images),
		row(_('Storage driver'), i.Driver),
		row(_('Cgroup version'), i.CgroupVersion),
		row(_('Data root'), i.DockerRootDir),
		row(_('Memory'), i.MemTotal ? '%1024.2mB'.format(i.MemTotal) : null)
	]);
}

return view.extend({
	load: function() {
		return callStatus();
	},

	render: function(st) {
		var box = E('div', { 'id': 'berth-status' }, [ render(st) ]);
		poll.add(function() {
			return callStatus().then(function(s) {
				var el = document.getElementById('berth-status');
				if (el) el.replaceChildren(render(s));
			});
		}, 10);
		return E('div', { 'class': 'cbi-map' }, [
			E('h2', {}, [ _('Containers (berth)') ]),
			E('div', { 'class': 'cbi-map-descr' }, [ _('A small Docker-compatible container engine. The Docker socket answers docker CLIs and luci-app-dockerman too.') ]),
			box
		]);
	},

	handleSaveApply: null,
	handleSave: null,
	handleReset: null
});
