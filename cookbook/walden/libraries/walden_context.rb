# frozen_string_literal: true

module Walden
  # Everything one recipe needs, read from the node and the host once at
  # compile time. Only node#[] is used, so the specs can pass a Hash.
  class Context
    RUN_STATE_KEY = 'walden'
    RECIPE_NAMES = { default: 'default', migrate: 'migrate_from_wal_e', rollback: 'rollback_to_wal_e' }.freeze

    attr_reader :recipe, :attrs, :config, :state, :paths, :steps

    # The three recipes each set the whole host up their own way; two in one
    # run list would fight over the same files.
    def self.claim!(run_state, ctx)
      other = run_state[RUN_STATE_KEY]
      if other && other.recipe != ctx.recipe
        raise ConfigError, "recipes walden::#{RECIPE_NAMES[other.recipe]} and walden::#{RECIPE_NAMES[ctx.recipe]} " \
                           'cannot be in one run list'
      end
      run_state[RUN_STATE_KEY] = ctx
    end

    # crontab: user -> crontab text; utc_offset: seconds. Both injectable.
    def initialize(node, recipe, crontab: Host.method(:crontab), utc_offset: Time.now.utc_offset)
      @recipe = recipe
      @attrs = Util.stringify(node['walden'] || {})
      @legacy = Legacy::NAMESPACES.map { |path| [label(path), dig(node, path)] }
      @utc_offset = utc_offset
      @paths = build_paths
      @state = detect(crontab)
      @config = build_config(Plan.lzo_default?(recipe, @state))
      @steps = Plan.steps(recipe, @state, accept_unrestorable: section('rollback')['accept_unrestorable'] == true)
    end

    def migration
      section('migration')
    end

    def cron_name
      migration['cron_name'] || Host::CRON_NAME
    end

    def cron_user
      migration['cron_user'] || config.user
    end

    # Envdir files this cookbook wrote before and the attributes dropped.
    def removals
      Envdir.removals(Envdir.read_manifest(config.manifest_path), config.env.keys)
    end

    def install
      Install.plan(@attrs['package'], @attrs['apt'])
    end

    def dropin
      Systemd.dropin(config, walden_bin: paths.walden_bin, exec_start: section('systemd')['exec_start'])
    end

    def warnings
      config.warnings + state_warnings
    end

    # Properties for the cron resource that brings WAL-E's backup back.
    def rollback_cron
      path = config.cron_save_path
      saved = File.file?(path) ? Crontab.load(File.read(path)) : nil
      Crontab.restore_properties(saved: saved, schedule: config.schedule,
                                 command: migration['cron_command'] || Host::CRON_COMMAND, user: cron_user)
    end

    def check_args
      check = section('check')
      { config: config, removals: removals, walden_bin: paths.walden_bin,
        timeout: check.fetch('timeout', Check::TIMEOUT), extra_args: Array(check['extra_args']) }
    end

    # Properties of the directories the cookbook makes for the agent: a
    # file store's root, the drill and lock directories.
    def agent_directories
      Systemd.writable_dirs(config.env) # refuses relative paths first
      Store.directories(config)
    end

    # Whether the agent may run now: the migration starts it only once
    # archive_command reaches walden.
    def agent_allowed?
      recipe != :migrate || Host.link_in_place?(paths)
    end

    private

    def build_config(lzo_default)
      Config.build(walden: @attrs, legacy: @legacy, lzo_default: lzo_default, utc_offset: @utc_offset)
    end

    # The envdir and user come from the attributes alone, so a first pass
    # without the compression default is enough to know where to look.
    def detect(crontab)
      probe = build_config(false)
      Host.detect(paths, envdir: probe.envdir, cron_name: cron_name,
                         cron_users: [migration['cron_user'], probe.user, 'root'].compact.uniq, crontab: crontab)
    end

    def state_warnings
      return ["no WAL-E found on this host; installing walden and the #{paths.wal_e} link only"] if
        recipe == :migrate && state.kind == :fresh
      return ['WAL-E is in place already; nothing to move back'] if recipe == :rollback && !state.aside

      []
    end

    def build_paths
      m = migration
      Host::Paths.new(install: m['install_path'] || Host::INSTALL_PATH, aside: m['aside_path'] || Host::ASIDE_PATH,
                      link_target: m['link_target'] || Host::LINK_TARGET,
                      walden_bin: @attrs['binary'] || Host::WALDEN_BIN)
    end

    def section(name)
      Util.hash_or_empty(@attrs[name])
    end

    def label(path)
      "node#{path.map { |p| "['#{p}']" }.join}"
    end

    def dig(node, path)
      path.reduce(node) do |obj, key|
        break nil unless obj.respond_to?(:[]) && !obj.is_a?(String)

        obj[key]
      end
    end
  end
end
