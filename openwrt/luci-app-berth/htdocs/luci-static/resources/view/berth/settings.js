'use strict';
'require view';
'require form';

// /etc/config/berth (openwrt/package/berth/files/berth.config): saving restarts berth
// through the init script's reload trigger.
return view.extend({
	render: function() {
		var m, s, o;

		m = new form.Map('berth', _('Container engine settings'), _('berth reads this configuration when it starts; applying it restarts the daemon.'));

		s = m.section(form.NamedSection, 'daemon', 'daemon', _('Daemon'));
		s.addremove = false;
		o = s.option(form.Flag, 'enabled', _('Enabled'));
		o.default = '1';
		o.rmempty = false;
		s.option(form.Value, 'data_root', _('Data root'), _('Images, containers and volumes: put it on external storage.')).placeholder = '/opt/berth';
		o = s.option(form.ListValue, 'storage_driver', _('Storage driver'));
		o.value('', _('Detect'));
		o.value('overlay', 'overlay');
		o.value('copy', 'copy (vfs)');
		o = s.option(form.DynamicList, 'socket', _('API sockets'));
		o.placeholder = 'unix:///var/run/berth.sock';
		s.option(form.Flag, 'docker_socket_compat', _('Docker socket link'), _('Link /var/run/docker.sock to berth for docker CLIs and luci-app-dockerman.'));
		s.option(form.Value, 'bridge', _('Bridge'), _('"none" disables bridge networking.')).placeholder = 'berth0';
		o = s.option(form.Value, 'bridge_address', _('Bridge address'));
		o.datatype = 'cidr4';
		o.placeholder = '10.88.0.1/16';
		o = s.option(form.ListValue, 'firewall_backend', _('Firewall backend'));
		[ 'auto', 'nftables', 'iptables', 'none' ].forEach(function(v) { o.value(v); });
		o = s.option(form.ListValue, 'log_level', _('Log level'));
		[ 'debug', 'info', 'warn', 'error' ].forEach(function(v) { o.value(v); });
		s.option(form.Value, 'log_max_size', _('Container log size limit')).placeholder = '1m';
		o = s.option(form.Value, 'log_max_file', _('Container log files kept'));
		o.datatype = 'uinteger';

		s = m.section(form.NamedSection, 'mqtt', 'mqtt', _('Fleet (MQTT)'));
		s.addremove = false;
		s.option(form.Flag, 'enabled', _('Enabled'));
		s.option(form.Value, 'broker', _('Broker URL')).placeholder = 'mqtts://broker.example.net:8883';
		s.option(form.Value, 'device_id', _('Device ID'), _('Default: the hostname.'));
		s.option(form.Value, 'ca', _('CA certificate'));
		s.option(form.Value, 'cert', _('Client certificate'));
		s.option(form.Value, 'key', _('Client key'));
		s.option(form.Value, 'username', _('User name'));
		o = s.option(form.Value, 'password', _('Password'));
		o.password = true;
		s.option(form.DynamicList, 'group', _('Groups'));
		o = s.option(form.DynamicList, 'allowed_action', _('Allowed actions'));
		[ 'ps', 'inspect', 'logs', 'start', 'stop', 'restart', 'pull', 'run', 'rm' ].forEach(function(v) { o.value(v); });

		return m.render();
	}
});
