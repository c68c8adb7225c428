'use strict';
'require view';
'require rpc';
'require ui';
'require poll';

var callContainers = rpc.declare({ object: 'berth', method: 'containers', params: [ 'all' ], expect: { '': {} } });
var callStart = rpc.declare({ object: 'berth', method: 'container_start', params: [ 'id' ], expect: { '': {} } });
var callStop = rpc.declare({ object: 'berth', method: 'container_stop', params: [ 'id' ], expect: { '': {} } });
var callRestart = rpc.declare({ object: 'berth', method: 'container_restart', params: [ 'id' ], expect: { '': {} } });
var callRemove = rpc.declare({ object: 'berth', method: 'container_remove', params: [ 'id', 'force' ], expect: { '': {} } });
var callLogs = rpc.declare({ object: 'berth', method: 'container_logs', params: [ 'id', 'tail' ], expect: { '': {} } });

// The backend answers {status, body} (the Engine API's answer) or {error}.
function failed(res) {
	if (!res) return _('no answer');
	if (res.error) return res.error;
	if (res.status >= 400) return (res.body && res.body.message) || ('HTTP ' + res.status);
	return null;
}

function nameOf(c) {
	return ((c.Names || [])[0] || c.Id.substring(0, 12)).replace(/^\//, '');
}

return view.extend({
	load: function() {
		return callContainers(true);
	},

	act: function(fn, id, args) {
		return fn.apply(null, [ id ].concat(args || [])).then(function(res) {
			var err = failed(res);
			if (err) ui.addNotification(null, E('p', {}, [ err ]), 'danger');
			return callContainers(true);
		}).then(L.bind(this.update, this));
	},

	showLogs: function(c) {
		return callLogs(c.Id, 200).then(function(res) {
			var err = failed(res);
			ui.showModal(_('Logs of %s').format(nameOf(c)), [
				E('pre', { 'style': 'max-height:60vh;overflow:auto;white-space:pre-wrap' }, [ err || res.body || _('(no output)') ]),
				E('div', { 'class': 'right' }, [ E('button', { 'class': 'btn', 'click': ui.hideModal }, [ _('Close') ]) ])
			]);
		});
	},

	rows: function(res) {
		var self = this, list = (res && Array.isArray(res.body)) ? res.body : [];
		return list.map(function(c) {
			var running = c.State === 'running';
			return [
				nameOf(c),
				c.Image,
				c.Status || c.State,
				(c.Ports || []).map(function(p) { return p.PublicPort ? (p.PublicPort + '->' + p.PrivatePort + '/' + p.Type) : ''; }).filter(Boolean).join(', '),
				E('div', {}, [
					E('button', { 'class': 'btn cbi-button-action', 'disabled': running ? true : null, 'click': ui.createHandlerFn(self, 'act', callStart, c.Id) }, [ _('Start') ]), ' ',
					E('button', { 'class': 'btn cbi-button-neutral', 'disabled': running ? null : true, 'click': ui.createHandlerFn(self, 'act', callStop, c.Id) }, [ _('Stop') ]), ' ',
					E('button', { 'class': 'btn cbi-button-neutral', 'click': ui.createHandlerFn(self, 'act', callRestart, c.Id) }, [ _('Restart') ]), ' ',
					E('button', { 'class': 'btn cbi-button', 'click': ui.createHandlerFn(self, 'showLogs', c) }, [ _('Logs') ]), ' ',
					E('button', { 'class': 'btn cbi-button-remove', 'click': ui.createHandlerFn(self, function() {
						if (confirm(_('Remove container %s?').format(nameOf(c))))
							return self.act(callRemove, c.Id, [ true ]);
					}) }, [ _('Remove') ])
				])
			];
		});
	},

	update: function(res) {
		var err = failed(res);
		if (err) ui.addNotification(null, E('p', {}, [ err ]), 'danger');
		cbi_update_table(this.table, this.rows(res), E('em', {}, [ _('No containers') ]));
	},

	render: function(res) {
		this.table = E('table', { 'class': 'table' }, [
			E('tr', { 'class': 'tr table-titles' }, [
				E('th', { 'class': 'th' }, [ _('Name') ]),
				E('th', { 'class': 'th' }, [ _('Image') ]),
				E('th', { 'class': 'th' }, [ _('Status') ]),
				E('th', { 'class': 'th' }, [ _('Ports') ]),
				E('th', { 'class': 'th cbi-section-actions' }, [ _('Actions') ])
			])
		]);
		this.update(res);
		poll.add(L.bind(function() { return callContainers(true).then(L.bind(this.update, this)); }, this), 10);
		return E('div', { 'class': 'cbi-map' }, [ E('h2', {}, [ _('Containers') ]), this.table ]);
	},

	handleSaveApply: null,
	handleSave: null,
	handleReset: null
});
