'use strict';
'require view';
'require rpc';
'require ui';

var callImages = rpc.declare({ object: 'berth', method: 'images', expect: { '': {} } });
var callPull = rpc.declare({ object: 'berth', method: 'image_pull', params: [ 'name' ], expect: { '': {} } });
var callRemove = rpc.declare({ object: 'berth', method: 'image_remove', params: [ 'name', 'force' ], expect: { '': {} } });

function failed(res) {
	if (!res) return _('no answer');
	if (res.error) return res.error;
	if (res.status >= 400) return (res.body && res.body.message) || ('HTTP ' + res.status);
	return null;
}

return view.extend({
	load: function() {
		return callImages();
	},

	refresh: function(res) {
		var err = failed(res);
		if (err) ui.addNotification(null, E('p', {}, [ err ]), 'danger');
		return callImages().then(L.bind(this.update, this));
	},

	pull: function() {
		var input = document.getElementById('berth-pull-name'), name = input.value.trim();
		if (!/^[A-Za-z0-9_.:\/@+-]+$/.test(name)) {
			ui.addNotification(null, E('p', {}, [ _('Enter an image reference such as busybox:latest') ]), 'warning');
			return;
		}
		ui.showModal(_('Pulling %s').format(name), [ E('p', { 'class': 'spinning' }, [ _('Downloading layers...') ]) ]);
		return callPull(name).then(L.bind(function(res) {
			ui.hideModal();
			return this.refresh(res);
		}, this));
	},

	remove: function(img) {
		var ref = (img.RepoTags || [])[0] || img.Id;
		if (!confirm(_('Remove image %s?').format(ref))) return;
		return callRemove(ref, false).then(L.bind(this.refresh, this));
	},

	update: function(res) {
		var self = this, list = (res && Array.isArray(res.body)) ? res.body : [];
		cbi_update_table(this.table, list.map(function(img) {
			return [
				(img.RepoTags || []).join(', ') || '<none>',
				(img.Id || '').replace(/^sha256:/, '').substring(0, 12),
				'%1024.2mB'.format(img.Size || 0),
				img.Created ? new Date(img.Created * 1000).toLocaleString() : '-',
				E('button', { 'class': 'btn cbi-button-remove', 'click': ui.createHandlerFn(self, 'remove', img) }, [ _('Remove') ])
			];
		}), E('em', {}, [ _('No images') ]));
	},

	render: function(res) {
		this.table = E('table', { 'class': 'table' }, [
			E('tr', { 'class': 'tr table-titles' }, [
				E('th', { 'class': 'th' }, [ _('Tags') ]),
				E('th', { 'class': 'th' }, [ _('ID') ]),
				E('th', { 'class': 'th' }, [ _('Size') ]),
				E('th', { 'class': 'th' }, [ _('Created') ]),
				E('th', { 'class': 'th cbi-section-actions' }, [ _('Actions') ])
			])
		]);
		this.update(res);
		return E('div', { 'class': 'cbi-map' }, [
			E('h2', {}, [ _('Images') ]),
			E('div', { 'class': 'cbi-section' }, [
				E('input', { 'id': 'berth-pull-name', 'type': 'text', 'class': 'cbi-input-text', 'placeholder': 'busybox:latest' }), ' ',
				E('button', { 'class': 'btn cbi-button-add', 'click': ui.createHandlerFn(this, 'pull') }, [ _('Pull') ])
			]),
			this.table
		]);
	},

	handleSaveApply: null,
	handleSave: null,
	handleReset: null
});
