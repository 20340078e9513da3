# frozen_string_literal: true

# The recipes only turn plan steps into resources. Without Chef they are not
# run here; these checks keep them in step with the library.
RSpec.describe 'recipes' do
  def recipe(name)
    File.read(File.join(COOKBOOK, 'recipes', "#{name}.rb"))
  end

  def all_recipes
    Dir[File.join(COOKBOOK, 'recipes', '*.rb')].map { |f| File.read(f) }
  end

  def handled(name)
    recipe(name).scan(/^\s+when :(\w+)/).flatten.map(&:to_sym)
  end

  it 'migrate_from_wal_e has resources for every step the plan can produce' do
    expect(handled('migrate_from_wal_e')).to match_array(
      %i[install_package check write_envdir save_cron remove_cron move_venv_aside link_wal_e start_agent]
    )
  end

  it 'rollback_to_wal_e has resources for every step the plan can produce' do
    expect(handled('rollback_to_wal_e')).to match_array(%i[stop_agent remove_link restore_venv restore_cron])
  end

  it 'uses only the templates that exist, and every template is used' do
    used = all_recipes.flat_map { |text| text.scan(/source '([^']+\.erb)'/).flatten }
    present = Dir[File.join(COOKBOOK, 'templates', 'default', '*.erb')].map { |f| File.basename(f) }
    expect(used.uniq).to match_array(present)
  end

  it 'uses only core Chef resources' do
    core = %w[package dpkg_package apt_repository directory file template link cron execute service ruby_block]
    used = all_recipes.flat_map { |text| text.scan(/^[ \t]*(\w+) [^=\n]*\bdo$/).flatten }
    expect(used.uniq - core - %w[if]).to eq([])
  end

  it 'names a default for every attribute the library reads' do
    attrs = default_attributes['walden']
    expect(attrs.keys).to include('envdir', 'user', 'group', 'env', 'package', 'apt', 'migration', 'check', 'rollback')
    expect(attrs['migration']).to eq('install_path' => '/opt/wal-e', 'aside_path' => '/opt/wal-e.pre-walden',
                                     'link_target' => '/usr/lib/walden/bin/wal-e', 'cron_name' => 'full wal-e backup',
                                     'cron_command' => '/opt/wal-e/bin/backup.sh', 'cron_user' => nil)
  end
end
